// The control plane: admin commands, the replication manager and the switchover.
#include "proxy/control_plane.hpp"

#include <spdlog/spdlog.h>

#include "replication/error.hpp"
#include "replication/manager.hpp"

namespace pgflip::proxy {

namespace json = boost::json;

namespace {

bool flag(const json::object& args, std::string_view name) {
  const json::value* value = args.if_contains(name);
  return value && value->is_bool() && value->as_bool();
}

replication::ServerLogin admin_login(const config::Endpoint& endpoint) {
  replication::ServerLogin login;
  login.host = endpoint.host;
  login.port = endpoint.port;
  login.user = endpoint.admin_user;
  login.password = endpoint.admin_password;
  login.maintenance_db = endpoint.admin_database;
  return login;
}

AdminReply replication_failure(const replication::ReplicationError& error) {
  json::object detail{{"database", error.database()},
                      {"step", error.step()},
                      {"sqlstate", error.sqlstate()},
                      {"detail", error.detail()}};
  std::string text = error.what();
  if (!error.detail().empty()) text += "\n" + error.detail();
  return AdminReply::failure("replication", error.what(), std::move(detail), std::move(text));
}

/// Runs a replication-manager call, turning its errors into admin replies.
template <class Body>
AdminReply guarded(Body&& body) {
  try {
    return body();
  } catch (const replication::ReplicationError& error) {
    return replication_failure(error);
  }
}

}  // namespace

ControlPlane::ControlPlane(ProxyContext& context) : context_(context), switchover_(context) {}

ControlPlane::~ControlPlane() { stop_replication_poller(); }

replication::Settings ControlPlane::replication_settings(const config::Config& config) {
  replication::Settings settings;
  settings.blue = admin_login(config.blue);
  if (config.green) settings.green = admin_login(*config.green);
  const auto& r = config.replication;
  settings.databases = r.databases;
  settings.blue_conninfo_for_green = r.blue_conninfo_for_green;
  settings.name_prefix = r.name_prefix;
  settings.retained_wal_alarm_bytes = r.retained_wal_alarm_bytes;
  settings.pg_bin_dir = r.pg_bin_dir;
  settings.statement_timeout = r.statement_timeout;
  settings.connect_timeout = config.server.connect_timeout;
  return settings;
}

void ControlPlane::register_commands(AdminServer& admin) {
  admin.add("status", "pgflip's state: active environment, sessions",
            [this](const AdminRequest& r, const AdminEmit&) { return status(r); });
  admin.add("replication precheck", "check blue and green for logical replication (PASS/WARN/FAIL)",
            [this](const AdminRequest& r, const AdminEmit&) { return replication_precheck(r); });
  admin.add(
      "replication init",
      "set up blue -> green replication (args: copy_schema, copy_roles) and wait for the copy",
      [this](const AdminRequest& r, const AdminEmit& emit) { return replication_init(r, emit); });
  admin.add("replication status", "lag, retained WAL, table states, DDL, errors per database",
            [this](const AdminRequest& r, const AdminEmit&) { return replication_status(r); });
  admin.add("replication cleanup", "drop every replication object pgflip created (idempotent)",
            [this](const AdminRequest& r, const AdminEmit&) { return replication_cleanup(r); });
  admin.add("replication ack-ddl",
            "mark the DDL recorded on blue as applied to green (clears the DDL guardrail)",
            [this](const AdminRequest&, const AdminEmit&) {
              if (!context_.config->green)
                return AdminReply::failure("config", "no [green] is configured");
              return guarded([&] {
                replication::Manager manager(replication_settings(*context_.config));
                const auto count = manager.acknowledge_ddl();
                return AdminReply::success(
                    json::object{{"acknowledged", count}},
                    std::to_string(count) + " DDL command(s) acknowledged\n");
              });
            });
  admin.add("show stats", "per-database totals: transactions, queries, bytes, query time, errors",
            [this](const AdminRequest& r, const AdminEmit&) { return show_stats(r); });
  admin.add("switchover",
            "move every session to green (args: timeout_s, drain_timeout_s, on_straggler, dry_run)",
            [this](const AdminRequest& r, const AdminEmit& emit) { return switchover(r, emit); });
  admin.add("abort", "abort the running switchover (before its commit point)",
            [this](const AdminRequest&, const AdminEmit&) {
              if (switchover_.request_abort()) {
                return AdminReply::success(json::object{{"abort_requested", true}},
                                           "abort requested; the switchover rolls back to blue\n");
              }
              return AdminReply::failure("state",
                                         "no switchover is running before its commit point");
            });
}

AdminReply ControlPlane::status(const AdminRequest&) {
  const auto& config = *context_.config;
  const double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const std::size_t sessions = context_.sessions.size();
  const Router::Active active = context_.router.active();
  json::object result{{"version", PGFLIP_VERSION},
                      {"active", active.name},
                      {"epoch", active.epoch},
                      {"switching", context_.router.gate_closed()},
                      {"blue", config.blue.address()},
                      {"green", config.green ? json::value(config.green->address()) : nullptr},
                      {"sessions", sessions},
                      {"uptime_seconds", uptime}};
  std::string text = "pgflip " + std::string(PGFLIP_VERSION) + "\n";
  text += "active environment: " + active.name + " (" + active.endpoint.address() + "), epoch " +
          std::to_string(active.epoch) + "\n";
  text +=
      "green:              " + (config.green ? config.green->address() : std::string("(none)")) +
      "\n";
  text += "client sessions:    " + std::to_string(sessions) + "\n";
  text += "uptime:             " + std::to_string(static_cast<long long>(uptime)) + " s\n";
  return AdminReply::success(std::move(result), std::move(text));
}

AdminReply ControlPlane::replication_precheck(const AdminRequest& request) {
  if (!context_.config->green) return AdminReply::failure("config", "no [green] is configured");
  return guarded([&] {
    replication::Manager manager(replication_settings(*context_.config));
    replication::PrecheckOptions options;
    options.schema_copy_planned = flag(request.args, "copy_schema");
    options.role_copy_planned = flag(request.args, "copy_roles");
    const auto report = manager.precheck(options);
    if (report.has_failures()) {
      return AdminReply::failure(
          "precheck",
          std::to_string(report.count(replication::CheckLevel::kFail)) + " check(s) failed",
          report.to_json(), report.to_table());
    }
    return AdminReply::success(report.to_json(), report.to_table());
  });
}

AdminReply ControlPlane::replication_init(const AdminRequest& request, const AdminEmit& emit) {
  if (!context_.config->green) return AdminReply::failure("config", "no [green] is configured");
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return AdminReply::failure("busy", "another long admin operation is running");
  return guarded([&] {
    replication::Manager manager(replication_settings(*context_.config));
    replication::InitOptions options;
    options.copy_schema = flag(request.args, "copy_schema");
    options.copy_roles = flag(request.args, "copy_roles");
    options.on_progress = [&](const replication::InitProgress& p) {
      char line[200];
      std::snprintf(line, sizeof line, "copying: %d/%d tables, %s of %s, %.1f s", p.tables_done,
                    p.tables_total, replication::format_bytes(p.bytes_copied).c_str(),
                    replication::format_bytes(p.bytes_total).c_str(), p.elapsed_seconds);
      emit("progress", line, p.to_json());
    };
    const auto report = manager.init(options);
    request_poll();  // the lag metrics appear now, not at the next interval
    return AdminReply::success(report.to_json(), report.to_table());
  });
}

AdminReply ControlPlane::replication_status(const AdminRequest&) {
  if (!context_.config->green) return AdminReply::failure("config", "no [green] is configured");
  return guarded([&] {
    replication::Manager manager(replication_settings(*context_.config));
    const auto report = manager.status();
    return AdminReply::success(report.to_json(), report.to_table());
  });
}

AdminReply ControlPlane::replication_cleanup(const AdminRequest&) {
  if (!context_.config->green) return AdminReply::failure("config", "no [green] is configured");
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return AdminReply::failure("busy", "another long admin operation is running");
  return guarded([&] {
    replication::Manager manager(replication_settings(*context_.config));
    const auto report = manager.cleanup();
    return AdminReply::success(report.to_json(), report.to_table());
  });
}

}  // namespace pgflip::proxy

namespace pgflip::proxy {

AdminReply ControlPlane::switchover(const AdminRequest& request, const AdminEmit& emit) {
  auto options = switchover_.options_from(request.args);
  if (auto* reason = std::get_if<std::string>(&options)) {
    return AdminReply::failure("bad_request", *reason);
  }
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return AdminReply::failure("busy", "another long admin operation is running");
  auto reply = switchover_.run(std::get<SwitchoverOptions>(options), emit);
  request_poll();
  return reply;
}

AdminReply ControlPlane::show_stats(const AdminRequest&) {
  json::array result;
  std::vector<std::vector<std::string>> rows;
  const auto millis = [](std::uint64_t us) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f ms", static_cast<double>(us) / 1000.0);
    return std::string(text);
  };
  for (const DatabaseStats* db : context_.metrics.databases()) {
    const std::uint64_t transactions = db->transactions->value();
    const std::uint64_t queries = db->queries->value();
    const std::uint64_t received = db->bytes_received->value();
    const std::uint64_t sent = db->bytes_sent->value();
    const auto latency = db->query_duration->snapshot();
    const std::uint64_t query_time_us = latency.sum_ns / 1000;
    const std::uint64_t timed = latency.count();
    const std::uint64_t avg_query_us = timed == 0 ? 0 : query_time_us / timed;
    const std::uint64_t errors = db->errors.total();
    // Flat objects with the same keys in the same order: one row each.
    result.push_back(json::object{{"database", db->name},
                                  {"total_xact_count", transactions},
                                  {"total_query_count", queries},
                                  {"total_received", received},
                                  {"total_sent", sent},
                                  {"total_query_time_us", query_time_us},
                                  {"avg_query_time_us", avg_query_us},
                                  {"total_errors", errors}});
    rows.push_back({db->name, std::to_string(transactions), std::to_string(queries),
                    replication::format_bytes(static_cast<std::int64_t>(received)),
                    replication::format_bytes(static_cast<std::int64_t>(sent)),
                    millis(query_time_us), millis(avg_query_us), std::to_string(errors)});
  }
  std::string text = replication::render_table({"DATABASE", "TRANSACTIONS", "QUERIES", "RECEIVED",
                                                "SENT", "QUERY TIME", "AVG QUERY", "ERRORS"},
                                               rows);
  if (rows.empty()) text += "(no client has logged in yet)\n";
  return AdminReply::success(std::move(result), std::move(text));
}

// ---------------------------------------------------------------------------
// The replication poller: `replication status` every few seconds for the lag gauges.

void ControlPlane::start_replication_poller() {
  const auto& config = *context_.config;
  if (!config.green || config.replication.databases.empty() || config.blue.admin_user.empty() ||
      config.green->admin_user.empty()) {
    return;
  }
  poller_ = std::jthread([this](std::stop_token stop) { poll_replication(stop); });
}

void ControlPlane::stop_replication_poller() {
  if (!poller_.joinable()) return;
  poller_.request_stop();
  poll_wake_.notify_all();
  poller_.join();
}

void ControlPlane::request_poll() {
  {
    std::lock_guard lock(poll_mutex_);
    poll_requested_ = true;
  }
  poll_wake_.notify_all();
}

void ControlPlane::poll_replication(std::stop_token stop) {
  // Every this many polls the heartbeat table is pruned (status() only adds rows).
  constexpr int kPruneEvery = 60;
  int polls = 0;
  bool last_ok = true;
  while (!stop.stop_requested()) {
    const auto& config = *context_.config;
    if (context_.router.active().name != "blue") {
      // Green serves: the forward replication is gone, so are its gauges.
      context_.metrics.replication_polled({});
    } else if (!switchover_.running()) {  // a switchover fences blue: keep the last values
      const auto started = std::chrono::steady_clock::now();
      bool ok = true;
      try {
        replication::Manager manager(replication_settings(config));
        const auto report = manager.status();
        std::vector<ProxyMetrics::ReplicationSample> samples;
        for (const auto& db : report.databases) {
          if (db.state == "absent") continue;  // nothing set up for it (yet)
          samples.push_back({db.database, db.lag_bytes, db.lag_seconds, db.retained_wal_bytes});
        }
        context_.metrics.replication_polled(samples);
        if (!samples.empty() && ++polls % kPruneEvery == 0) (void)manager.heartbeat();
        if (!last_ok) spdlog::info("replication status poll works again");
      } catch (const std::exception& e) {
        ok = false;
        // Logged when it starts failing, not every interval.
        if (last_ok)
          spdlog::warn("replication status poll failed (lag metrics stale): {}", e.what());
      }
      last_ok = ok;
      const double now =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      context_.metrics.replication_poll_result(ok, now, std::chrono::steady_clock::now() - started);
    }
    std::unique_lock lock(poll_mutex_);
    poll_wake_.wait_for(lock, stop, kReplicationPollInterval, [this] { return poll_requested_; });
    poll_requested_ = false;
  }
}

}  // namespace pgflip::proxy
