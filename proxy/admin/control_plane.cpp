// The control plane: admin commands, the replication manager and the switchover.
#include "proxy/admin/control_plane.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <thread>

#include "proxy/admin/switchover_render.hpp"
#include "proxy/base/utc_time.hpp"
#include "proxy/control/reload.hpp"
#include "proxy/control/replication_settings.hpp"
#include "proxy/observe/alarm_latch.hpp"
#include "proxy/observe/sd_notify.hpp"
#include "proxy/session/session.hpp"
#include "replication/error.hpp"
#include "replication/manager.hpp"

namespace pgflip::proxy {

namespace json = boost::json;

namespace {

bool flag(const json::object& args, std::string_view name) {
  const json::value* value = args.if_contains(name);
  return value && value->is_bool() && value->as_bool();
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
              const auto config = context_.config();
              if (!config->green) return AdminReply::failure("config", "no [green] is configured");
              return guarded([&] {
                replication::Manager manager(replication_settings(*config));
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
  admin.add("switchover history",
            "the kept reports of past switchovers, oldest first (args: limit, the newest N)",
            [this](const AdminRequest& r, const AdminEmit&) { return switchover_history(r); });
  admin.add("reload",
            "re-read the configuration file; apply what can change live, list what needs a "
            "restart",
            [this](const AdminRequest&, const AdminEmit&) { return reload("admin"); });
  admin.add("show clients", "one row per client connection (admin consoles included)",
            [this](const AdminRequest&, const AdminEmit&) { return show_clients(); });
  admin.add("show servers", "one row per server connection",
            [this](const AdminRequest&, const AdminEmit&) { return show_servers(); });
  admin.add("show config", "the loaded configuration, one row per key, secrets masked",
            [this](const AdminRequest&, const AdminEmit&) { return show_config(); });
  admin.add("show state", "active environment, epoch, switchover, fence, uptime, version",
            [this](const AdminRequest&, const AdminEmit&) { return show_state(); });
  admin.add("show replication", "replication status, one row per database",
            [this](const AdminRequest&, const AdminEmit&) { return show_replication(); });
  admin.add("show switchovers", "the kept switchovers, one row each (switchover history)",
            [this](const AdminRequest&, const AdminEmit&) { return show_switchovers(); });
  admin.add("pause",
            "hold every client at its next transaction boundary (maintenance without a "
            "switchover; args: timeout_s, how long to wait for open transactions)",
            [this](const AdminRequest& r, const AdminEmit& emit) { return pause(r, emit); });
  admin.add("resume", "release the clients PAUSE holds",
            [this](const AdminRequest&, const AdminEmit&) { return resume(); });
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
  const auto snapshot = context_.config();
  const auto& config = *snapshot;
  const double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const std::size_t sessions = context_.sessions.size();
  const Router::Active active = context_.router.active();
  json::object result{{"version", PGFLIP_VERSION},
                      {"active", active.name},
                      {"epoch", active.epoch},
                      {"switching", context_.login_gate.closed()},
                      {"paused", context_.paused.load()},
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
  if (context_.paused.load()) text += "paused:             yes (RESUME releases the clients)\n";
  text += "uptime:             " + std::to_string(static_cast<long long>(uptime)) + " s\n";
  return AdminReply::success(std::move(result), std::move(text));
}

AdminReply ControlPlane::replication_precheck(const AdminRequest& request) {
  const auto config = context_.config();
  if (!config->green) return AdminReply::failure("config", "no [green] is configured");
  return guarded([&] {
    replication::Manager manager(replication_settings(*config));
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
  const auto config = context_.config();
  if (!config->green) return AdminReply::failure("config", "no [green] is configured");
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return AdminReply::failure("busy", "another long admin operation is running");
  return guarded([&] {
    replication::Manager manager(replication_settings(*config));
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
  const auto config = context_.config();
  if (!config->green) return AdminReply::failure("config", "no [green] is configured");
  return guarded([&] {
    replication::Manager manager(replication_settings(*config));
    const auto report = manager.status();
    return AdminReply::success(report.to_json(), report.to_table());
  });
}

AdminReply ControlPlane::replication_cleanup(const AdminRequest&) {
  const auto config = context_.config();
  if (!config->green) return AdminReply::failure("config", "no [green] is configured");
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return AdminReply::failure("busy", "another long admin operation is running");
  return guarded([&] {
    replication::Manager manager(replication_settings(*config));
    const auto report = manager.cleanup();
    return AdminReply::success(report.to_json(), report.to_table());
  });
}

}  // namespace pgflip::proxy

namespace pgflip::proxy {

AdminReply ControlPlane::switchover(const AdminRequest& request, const AdminEmit& emit) {
  auto options = switchover_options(*context_.config(), request.args);
  if (auto* reason = std::get_if<std::string>(&options)) {
    return AdminReply::failure("bad_request", *reason);
  }
  auto refuse = [](std::string code, std::string message) {
    spdlog::warn("switchover refused ({}), nothing changed: {}", code, message);
    return AdminReply::failure(std::move(code), std::move(message));
  };
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return refuse("busy", "another long admin operation is running");
  if (context_.paused.load()) {
    return refuse("state", "pgflip is paused: RESUME first, then switch over");
  }
  std::unique_lock router_lock(router_change_, std::try_to_lock);
  if (!router_lock) return refuse("busy", "a configuration reload is running");
  {
    std::lock_guard record(record_mutex_);
    record_.running = true;
  }
  const SwitchoverObserver observer{
      [&emit](const StepRecord& step) { emit("step", step_line(step), step_json(step)); },
      [&emit](const std::string& text) { emit("step", text, nullptr); }};
  const auto outcome = switchover_.run(std::get<SwitchoverOptions>(options), observer);
  systemd::notify(service_status());
  request_poll();
  std::lock_guard record(record_mutex_);
  record_.running = false;
  record_.finished_at = utc_now();
  if (const auto* refusal = std::get_if<SwitchoverRefusal>(&outcome)) {
    record_.id.clear();
    record_.outcome = "failed";
    record_.reason = refusal->message;
    return AdminReply::failure(refusal->code, refusal->message);
  }
  const auto& report = std::get<SwitchoverReport>(outcome);
  record_.id = report.id;
  record_.outcome = std::string(outcome_name(report.outcome));
  record_.reason = report.failed_step
                       ? std::string(step_name(*report.failed_step)) + ": " + report.reason
                       : report.reason;
  if (report.outcome == SwitchoverOutcome::kAborted) {
    const std::string message = "aborted at " + record_.reason;
    return AdminReply::failure("switchover_aborted", message, report_json(report),
                               report_text(report));
  }
  return AdminReply::success(report_json(report), report_text(report));
}

namespace {

json::array key_array(const std::vector<std::string>& keys) {
  json::array array;
  for (const std::string& key : keys) array.emplace_back(key);
  return array;
}

std::string key_list(const std::vector<std::string>& keys) {
  if (keys.empty()) return "(none)";
  std::string text;
  for (const std::string& key : keys) text += (text.empty() ? "" : ", ") + key;
  return text;
}

}  // namespace

AdminReply ControlPlane::reload(std::string_view trigger) {
  const std::string source = context_.config()->source;
  std::unique_lock lock(router_change_, std::try_to_lock);
  if (!lock) {
    const std::string why = "a switchover or another reload is running; reload when it is done";
    spdlog::error("configuration reload ({}) refused: {}", trigger, why);
    return AdminReply::failure("busy", why);
  }
  ReloadOutcome outcome;
  try {
    outcome = reload_config(context_);
  } catch (const std::exception& e) {
    spdlog::error("configuration reload ({}) failed, the running configuration stays: {}", trigger,
                  e.what());
    return AdminReply::failure("config", e.what());
  }
  spdlog::info("configuration reloaded ({}) from {}: changed: {}; needs restart: {}", trigger,
               source, key_list(outcome.changed), key_list(outcome.needs_restart));
  std::string text = "reloaded " + source + "\n";
  text += "changed (in force now):     " + key_list(outcome.changed) + "\n";
  text += "needs a restart (not used): " + key_list(outcome.needs_restart) + "\n";
  return AdminReply::success(json::object{{"changed", key_array(outcome.changed)},
                                          {"needs_restart", key_array(outcome.needs_restart)}},
                             std::move(text));
}

std::string ControlPlane::service_status() const {
  const Router::Active active = context_.router.active();
  std::string status =
      "STATUS=serving from " + active.name + " (epoch " + std::to_string(active.epoch) + ")";
  if (context_.paused.load()) status += ", paused";
  return status;
}

// ---------------------------------------------------------------------------
// PAUSE / RESUME: every session holds its next request at a transaction boundary (sessions
// logging in meanwhile too) until RESUME; the server connections stay open.

AdminReply ControlPlane::pause(const AdminRequest& request, const AdminEmit& emit) {
  std::chrono::milliseconds wait = context_.config()->switchover.drain_timeout;
  if (const json::value* v = request.args.if_contains("timeout_s")) {
    const double s = v->is_double() ? v->as_double() : v->is_int64() ? double(v->as_int64()) : -1;
    if (s <= 0 || s > 86400) {
      return AdminReply::failure("bad_request",
                                 "timeout_s must be a number of seconds in (0, 86400]");
    }
    wait = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
  }
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return AdminReply::failure("busy", "another long admin operation is running");
  if (context_.paused.exchange(true)) {
    return AdminReply::failure("state", "pgflip is already paused (RESUME releases the clients)");
  }
  spdlog::warn("PAUSE: holding every client at its next transaction boundary");
  systemd::notify(service_status());
  std::vector<std::shared_ptr<Session>> sessions;
  context_.sessions.for_each([&](const std::shared_ptr<Session>& s) {
    if (!s->is_console()) sessions.push_back(s);
  });
  for (auto& s : sessions) s->pause();

  // Report when every session is at a boundary, or when `wait` runs out (the rest park at
  // their boundary later; PAUSE stays in force either way).
  const auto start = std::chrono::steady_clock::now();
  auto open_transactions = [&] {
    json::array ids;
    for (const auto& s : sessions) {
      if (!s->paused_at_boundary() && s->info().state == "active") ids.push_back(s->id());
    }
    return ids;
  };
  // Sessions notify the registry when they reach their boundary, or leave.
  Notifier& changes = context_.sessions.changes();
  auto seen = changes.generation();
  json::array waiting = open_transactions();
  for (auto next_note = start + std::chrono::seconds(1); !waiting.empty();) {
    const auto now = std::chrono::steady_clock::now();
    if (now - start >= wait) break;
    if (now >= next_note) {
      next_note = now + std::chrono::seconds(1);
      emit("progress", std::to_string(waiting.size()) + " session(s) still in a transaction",
           json::object{{"waiting", waiting.size()}});
    }
    (void)changes.wait_until(seen, std::min(next_note, start + wait));
    seen = changes.generation();
    waiting = open_transactions();
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const std::size_t parked = sessions.size() - waiting.size();
  json::object result{
      {"paused", true},
      {"sessions", sessions.size()},
      {"at_boundary", parked},
      {"in_transaction", waiting},
      {"wait_ms", ms},
      {"query_wait_timeout_ms", context_.config()->server.query_wait_timeout.count()}};
  std::string text = "paused: " + std::to_string(parked) + " of " +
                     std::to_string(sessions.size()) + " session(s) at a transaction boundary";
  if (!waiting.empty()) {
    text +=
        "; " + std::to_string(waiting.size()) + " still in a transaction (each parks at its end)";
  }
  text += "\nnew requests wait for RESUME (at most server.query_wait_timeout_ms)\n";
  spdlog::warn("PAUSE: {} of {} sessions at a boundary after {:.0f} ms", parked, sessions.size(),
               ms);
  return AdminReply::success(std::move(result), std::move(text));
}

AdminReply ControlPlane::resume() {
  if (!context_.paused.exchange(false)) {
    return AdminReply::failure("state", "pgflip is not paused");
  }
  std::size_t released = 0;
  context_.sessions.for_each([&](const std::shared_ptr<Session>& s) {
    if (s->is_console()) return;
    s->resume();
    ++released;
  });
  spdlog::warn("RESUME: {} session(s) released", released);
  systemd::notify(service_status());
  return AdminReply::success(json::object{{"paused", false}, {"sessions", released}},
                             "resumed: " + std::to_string(released) + " session(s) released\n");
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
  const auto snapshot = context_.config();
  const auto& config = *snapshot;
  if (!config.green || config.replication.databases.empty() || config.blue.admin_user.empty() ||
      config.green->admin_user.empty()) {
    return;
  }
  poller_ = std::jthread([this](const std::stop_token& stop) { poll_replication(stop); });
}

void ControlPlane::stop_replication_poller() {
  if (!poller_.joinable()) return;
  poller_.request_stop();
  poll_wake_.notify_all();
  poller_.join();
}

void ControlPlane::resume_cleanup() {
  const auto config = context_.config();
  if (context_.router.active().name != "green" || !config->green ||
      config->blue.admin_user.empty() || config->green->admin_user.empty()) {
    return;
  }
  cleanup_ = std::jthread([this, config] {
    std::lock_guard lock(long_operation_);  // not alongside an operator's init or cleanup
    try {
      replication::Manager manager(replication_settings(*config));
      const auto report = manager.cleanup();
      if (report.dropped() > 0) {
        spdlog::warn(
            "green is active: dropped {} replication object(s) an interrupted switchover left "
            "(its cleanup step did not finish)",
            report.dropped());
      }
    } catch (const std::exception& e) {
      spdlog::warn(
          "green is active, but the replication cleanup after the switchover failed: {}; run "
          "'pgflipctl replication cleanup' once both servers answer",
          e.what());
    }
  });
}

void ControlPlane::request_poll() {
  {
    std::lock_guard lock(poll_mutex_);
    poll_requested_ = true;
  }
  poll_wake_.notify_all();
}

namespace {

/// One line when a slot's retained-WAL alarm trips (warning) or clears (info).
void log_retained_wal_alarms(const AlarmLatch::Changes& changes,
                             const replication::StatusReport& report) {
  auto retained = [&](const std::string& database) {
    for (const auto& db : report.databases) {
      if (db.database == database && db.retained_wal_bytes) {
        return replication::format_bytes(*db.retained_wal_bytes);
      }
    }
    return std::string("an unknown amount");
  };
  const std::string limit = replication::format_bytes(report.retained_wal_alarm_bytes);
  for (const auto& database : changes.tripped) {
    spdlog::warn(
        "replication [{}]: blue retains {} of WAL for green's slot, above "
        "replication.retained_wal_alarm_bytes ({}): green is not confirming changes, and blue's "
        "disk fills until it does ('pgflipctl replication status' shows why; 'pgflipctl "
        "replication cleanup' drops the slot)",
        database, retained(database), limit);
  }
  for (const auto& database : changes.cleared) {
    spdlog::info("replication [{}]: retained WAL alarm cleared ({} retained, alarm at {})",
                 database, retained(database), limit);
  }
}

}  // namespace

void ControlPlane::poll_replication(const std::stop_token& stop) {
  // Every this many polls the heartbeat table is pruned (status() only adds rows).
  constexpr int kPruneEvery = 60;
  int polls = 0;
  bool last_ok = true;
  AlarmLatch retained_wal_alarms;  // logged when one trips or clears, not every poll
  while (!stop.stop_requested()) {
    const auto snapshot = context_.config();
    const auto& config = *snapshot;
    if (context_.router.active().name != "blue") {
      // Green serves: the forward replication is gone, so are its gauges and alarms.
      context_.metrics.replication_polled({});
      (void)retained_wal_alarms.update({});
    } else if (!switchover_.running()) {  // a switchover fences blue: keep the last values
      const auto started = std::chrono::steady_clock::now();
      bool ok = true;
      try {
        replication::Manager manager(replication_settings(config));
        const auto report = manager.status();
        std::vector<ProxyMetrics::ReplicationSample> samples;
        std::vector<std::pair<std::string, bool>> alarms;
        for (const auto& db : report.databases) {
          if (db.state == "absent") continue;  // nothing set up for it (yet)
          samples.push_back({db.database, db.lag_bytes, db.lag_seconds, db.retained_wal_bytes,
                             db.retained_wal_alarm});
          alarms.emplace_back(db.database, db.retained_wal_alarm);
        }
        context_.metrics.replication_polled(samples);
        log_retained_wal_alarms(retained_wal_alarms.update(alarms), report);
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
    // heartbeat_interval_ms = 0: no periodic polls, only those asked for (after init and a
    // switchover). A reload changes the interval from the next wait on.
    if (config.replication.heartbeat_interval.count() > 0) {
      poll_wake_.wait_for(lock, stop, config.replication.heartbeat_interval,
                          [this] { return poll_requested_; });
    } else {
      poll_wake_.wait(lock, stop, [this] { return poll_requested_; });
    }
    poll_requested_ = false;
  }
}

}  // namespace pgflip::proxy
