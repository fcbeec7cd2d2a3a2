// The control plane: admin commands, the replication manager and the switchover.
#include "proxy/control_plane.hpp"

#include <spdlog/spdlog.h>

#include <ctime>

#include "proxy/reload.hpp"
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
  admin.add("switchover",
            "move every session to green (args: timeout_s, drain_timeout_s, on_straggler, dry_run)",
            [this](const AdminRequest& r, const AdminEmit& emit) { return switchover(r, emit); });
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
  auto options = switchover_.options_from(request.args);
  if (auto* reason = std::get_if<std::string>(&options)) {
    return AdminReply::failure("bad_request", *reason);
  }
  std::unique_lock lock(long_operation_, std::try_to_lock);
  if (!lock) return AdminReply::failure("busy", "another long admin operation is running");
  std::unique_lock router_lock(router_change_, std::try_to_lock);
  if (!router_lock) return AdminReply::failure("busy", "a configuration reload is running");
  {
    std::lock_guard record(record_mutex_);
    record_.running = true;
  }
  AdminReply reply = switchover_.run(std::get<SwitchoverOptions>(options), emit);
  std::lock_guard record(record_mutex_);
  record_.running = false;
  if (const json::object* result = reply.result.if_object();
      result && result->contains("outcome")) {
    auto text = [&](std::string_view key) {
      const json::value* value = result->if_contains(key);
      return value && value->is_string() ? std::string(value->as_string()) : std::string();
    };
    record_.id = text("switchover_id");
    record_.outcome = text("outcome");
    record_.reason = text("reason");
    if (!text("failed_step").empty()) record_.reason = text("failed_step") + ": " + record_.reason;
  } else {
    record_.id.clear();
    record_.outcome = "failed";
    record_.reason = reply.error_message;
  }
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char at[32];
  std::strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
  record_.finished_at = at;
  return reply;
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

}  // namespace pgflip::proxy
