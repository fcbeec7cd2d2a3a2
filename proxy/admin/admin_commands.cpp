// The tabular `show ...` admin commands: clients, servers, config, state, replication,
// switchovers. Each returns an array of flat rows (AdminTable), which pgflipctl prints and the
// console sends; and `switchover history`, the same rows as text with the full reports as JSON.
#include <spdlog/spdlog.h>

#include <ctime>

#include "config/describe.hpp"
#include "proxy/admin/admin_table.hpp"
#include "proxy/admin/control_plane.hpp"
#include "proxy/admin/switchover_render.hpp"
#include "proxy/base/utc_time.hpp"
#include "proxy/control/replication_settings.hpp"
#include "proxy/session/session.hpp"
#include "replication/error.hpp"
#include "replication/manager.hpp"

namespace pgflip::proxy {

namespace json = boost::json;

namespace {

/// UTC, ISO 8601 with milliseconds: "2025-01-31T12:34:56.789Z"; null for an unset time.
json::value timestamp(std::chrono::system_clock::time_point at) {
  if (at.time_since_epoch().count() == 0) return nullptr;
  return json::string(iso8601_utc(at, true));
}

std::string host_port(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

/// Every session's snapshot, ordered by id.
std::vector<SessionInfo> session_infos(const SessionRegistry& sessions) {
  std::vector<SessionInfo> infos;
  sessions.for_each([&](const std::shared_ptr<Session>& s) { infos.push_back(s->info()); });
  std::sort(infos.begin(), infos.end(),
            [](const SessionInfo& a, const SessionInfo& b) { return a.id < b.id; });
  return infos;
}

json::value text_or_null(const std::string& text) {
  if (text.empty()) return nullptr;
  return json::string(text);
}

/// The kept switchover reports (switchover.state_file's history), newest `limit` (0: all);
/// the lines skipped are logged and returned as a footer.
std::pair<HistoryRead, std::string> kept_switchovers(const config::Config& config,
                                                     std::size_t limit) {
  const std::string path = history_path(config.switchover.state_file);
  HistoryRead history = read_history(path, limit);
  std::string footer;
  for (const auto& warning : history.warnings) {
    spdlog::warn("{}", warning);
    footer += "warning: " + warning + "\n";
  }
  return {std::move(history), std::move(footer)};
}

}  // namespace

AdminReply ControlPlane::show_clients() {
  AdminTable table({"id", "type", "user", "database", "application_name", "address", "state",
                    "environment", "tls", "connected_at", "state_since", "server_pid"});
  for (const SessionInfo& s : session_infos(context_.sessions)) {
    table.add({s.id, json::string(s.console ? "console" : "client"), text_or_null(s.user),
               text_or_null(s.database), json::string(s.application_name), json::string(s.peer),
               json::string(s.state), text_or_null(s.environment), s.client_tls,
               timestamp(s.connected_at), timestamp(s.state_since),
               s.server_pid != 0 ? json::value(s.server_pid) : json::value(nullptr)});
  }
  return table.reply();
}

AdminReply ControlPlane::show_servers() {
  AdminTable table({"session", "user", "database", "environment", "address", "server_pid", "state",
                    "tls", "connected_at"});
  for (const SessionInfo& s : session_infos(context_.sessions)) {
    if (s.environment.empty()) continue;
    table.add({s.id, json::string(s.user), json::string(s.database), json::string(s.environment),
               json::string(host_port(s.server_host, s.server_port)), s.server_pid,
               json::string(s.state), s.server_tls, timestamp(s.server_since)});
  }
  return table.reply();
}

AdminReply ControlPlane::show_config() {
  const auto config = context_.config();  // one consistent snapshot, even across a reload
  AdminTable table({"key", "value", "default", "changed", "restart"});
  for (const auto& entry : config::describe(*config)) {
    table.add({json::string(entry.key),
               entry.value ? json::value(json::string(*entry.value)) : json::value(nullptr),
               json::string(entry.default_value), !entry.is_default && entry.value.has_value(),
               entry.restart});
  }
  return table.reply("source: " + config->source + "\n");
}

AdminReply ControlPlane::show_state() {
  const auto config = context_.config();
  const Router::Active active = context_.router.active();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  std::int64_t clients = 0;
  std::int64_t consoles = 0;
  context_.sessions.for_each(
      [&](const std::shared_ptr<Session>& s) { ++(s->is_console() ? consoles : clients); });
  SwitchoverRecord record;
  {
    std::lock_guard lock(record_mutex_);
    record = record_;
  }
  // Whether blue carries pgflip's fence: asked of blue itself (the replication manager).
  std::string fence;
  if (!config->green || config->blue.admin_user.empty()) {
    fence = "unknown (needs [green] and blue.admin_user)";
  } else {
    try {
      replication::Manager manager(replication_settings(*config));
      const auto state = manager.fence_state();
      fence = state.recorded ? "fenced since " + state.fenced_at +
                                   (state.label.empty() ? "" : " (" + state.label + ")")
                             : "not fenced";
    } catch (const std::exception& e) {
      fence = std::string("unknown: ") + e.what();
    }
  }

  AdminTable table({"key", "value"});
  auto row = [&](std::string_view key, json::value value) {
    table.add({json::string(key), std::move(value)});
  };
  row("version", json::string(PGFLIP_VERSION));
  row("uptime_seconds", uptime);
  row("active", json::string(active.name));
  row("active_address", json::string(active.endpoint.address()));
  row("epoch", active.epoch);
  row("blue", json::string(config->blue.address()));
  row("green", config->green ? json::value(json::string(config->green->address())) : nullptr);
  row("logins_held", context_.login_gate.closed());
  row("paused", context_.paused.load());
  row("switchover", json::string(record.running ? "running" : "idle"));
  row("last_switchover_id", text_or_null(record.id));
  row("last_switchover_outcome", text_or_null(record.outcome));
  row("last_switchover_at", text_or_null(record.finished_at));
  row("last_switchover_reason", text_or_null(record.reason));
  row("blue_fence", json::string(fence));
  row("clients", clients);
  row("consoles", consoles);
  row("state_file", json::string(config->switchover.state_file));
  return table.reply();
}

AdminReply ControlPlane::show_switchovers() {
  try {
    auto [history, footer] = kept_switchovers(*context_.config(), 0);
    return history_table(history.reports).reply(footer);
  } catch (const std::exception& e) {
    return AdminReply::failure("state", e.what());
  }
}

AdminReply ControlPlane::switchover_history(const AdminRequest& request) {
  std::size_t limit = 0;
  if (const json::value* v = request.args.if_contains("limit")) {
    if (!v->is_int64() || v->as_int64() < 1) {
      return AdminReply::failure("bad_request", "limit must be a whole number of reports >= 1");
    }
    limit = static_cast<std::size_t>(v->as_int64());
  }
  try {
    const auto config = context_.config();
    auto [history, footer] = kept_switchovers(*config, limit);
    json::array reports;
    for (const auto& report : history.reports) reports.push_back(report_json(report));
    std::string text =
        history.reports.empty()
            ? "no switchover kept in " + history_path(config->switchover.state_file) + "\n"
            : history_table(history.reports).to_text();
    return AdminReply::success(std::move(reports), text + footer);
  } catch (const std::exception& e) {
    return AdminReply::failure("state", e.what());
  }
}

AdminReply ControlPlane::show_replication() {
  const auto config = context_.config();
  if (!config->green) return AdminReply::failure("config", "no [green] is configured");
  try {
    replication::Manager manager(replication_settings(*config));
    const auto report = manager.status();
    AdminTable table({"database", "state", "lag_bytes", "lag_seconds", "retained_wal_bytes",
                      "tables_ready", "tables_total", "ddl_count", "apply_errors", "sync_errors",
                      "slot_active", "wal_status", "alarms"});
    auto optional_int = [](const std::optional<std::int64_t>& v) -> json::value {
      if (!v) return nullptr;
      return *v;
    };
    for (const auto& db : report.databases) {
      std::string alarms;
      for (const auto& alarm : db.alarms) alarms += (alarms.empty() ? "" : "; ") + alarm;
      table.add({json::string(db.database), json::string(db.state), optional_int(db.lag_bytes),
                 db.lag_seconds ? json::value(*db.lag_seconds) : json::value(nullptr),
                 optional_int(db.retained_wal_bytes), db.tables_ready, db.tables_total,
                 db.ddl_count, db.apply_error_count, db.sync_error_count, db.slot_active,
                 text_or_null(db.wal_status), text_or_null(alarms)});
    }
    return table.reply();
  } catch (const replication::ReplicationError& error) {
    std::string text = error.what();
    if (!error.detail().empty()) text += "\n" + error.detail();
    return AdminReply::failure("replication", error.what(), nullptr, std::move(text));
  }
}

}  // namespace pgflip::proxy
