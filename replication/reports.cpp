// Rendering of the manager's results: JSON for the admin socket, text tables for humans.
#include "replication/reports.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>

namespace pgflip::replication {
namespace json = boost::json;
namespace {

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t p = 0;
  for (;;) {
    const std::size_t e = s.find('\n', p);
    out.push_back(s.substr(p, e == std::string::npos ? std::string::npos : e - p));
    if (e == std::string::npos) break;
    p = e + 1;
  }
  return out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

template <class T>
json::value opt(const std::optional<T>& v) {
  if (!v) return nullptr;
  return json::value_from(*v);
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::string db_label(const std::string& database) {
  return database.empty() ? "(cluster)" : database;
}

}  // namespace

std::string format_bytes(std::int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while ((v >= 1024.0 || v <= -1024.0) && unit < 4) {
    v /= 1024.0;
    ++unit;
  }
  return unit == 0 ? std::to_string(bytes) + " B" : fixed(v, 1) + " " + kUnits[unit];
}

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(headers.size(), 0);
  for (std::size_t c = 0; c < headers.size(); ++c) width[c] = headers[c].size();
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c) {
      for (const auto& line : split_lines(row[c])) width[c] = std::max(width[c], line.size());
    }
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& cells) {
    std::vector<std::vector<std::string>> lines;
    std::size_t height = 1;
    for (std::size_t c = 0; c < width.size(); ++c) {
      lines.push_back(split_lines(c < cells.size() ? cells[c] : std::string()));
      height = std::max(height, lines.back().size());
    }
    for (std::size_t l = 0; l < height; ++l) {
      std::string line;
      for (std::size_t c = 0; c < width.size(); ++c) {
        const std::string& cell = l < lines[c].size() ? lines[c][l] : std::string();
        line += cell;
        if (c + 1 < width.size()) line += std::string(width[c] - cell.size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
  };
  emit(headers);
  std::vector<std::string> rule;
  rule.reserve(width.size());
  for (std::size_t w : width) rule.emplace_back(w, '-');
  emit(rule);
  for (const auto& row : rows) emit(row);
  return out;
}

std::string_view to_string(CheckLevel level) {
  switch (level) {
    case CheckLevel::kPass:
      return "PASS";
    case CheckLevel::kWarn:
      return "WARN";
    case CheckLevel::kFail:
      return "FAIL";
  }
  return "?";
}

std::string_view to_string(FenceAction action) {
  switch (action) {
    case FenceAction::kFenced:
      return "fenced";
    case FenceAction::kAlreadyFenced:
      return "already_fenced";
    case FenceAction::kUnfenced:
      return "unfenced";
    case FenceAction::kNotFenced:
      return "not_fenced";
  }
  return "?";
}

// ---- precheck ---------------------------------------------------------------------------

std::size_t PrecheckReport::count(CheckLevel level) const {
  return static_cast<std::size_t>(
      std::count_if(rows.begin(), rows.end(), [&](const auto& r) { return r.level == level; }));
}

std::vector<PrecheckRow> PrecheckReport::find(std::string_view check,
                                              std::string_view database) const {
  std::vector<PrecheckRow> out;
  for (const auto& r : rows) {
    if (r.check == check && (database.empty() || r.database == database)) out.push_back(r);
  }
  return out;
}

json::value PrecheckReport::to_json() const {
  json::array items;
  for (const auto& r : rows) {
    items.push_back(json::object{{"database", r.database},
                                 {"check", r.check},
                                 {"result", to_string(r.level)},
                                 {"object", r.object},
                                 {"detail", r.detail},
                                 {"fix", r.fix}});
  }
  return json::object{{"databases", strings(databases)},
                      {"pass", static_cast<std::int64_t>(count(CheckLevel::kPass))},
                      {"warn", static_cast<std::int64_t>(count(CheckLevel::kWarn))},
                      {"fail", static_cast<std::int64_t>(count(CheckLevel::kFail))},
                      {"rows", std::move(items)}};
}

std::string PrecheckReport::to_table() const {
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    std::string detail = r.detail;
    if (!r.fix.empty()) detail += "\nfix: " + r.fix;
    cells.push_back(
        {db_label(r.database), r.check, std::string(to_string(r.level)), r.object, detail});
  }
  return render_table({"DATABASE", "CHECK", "RESULT", "OBJECT", "DETAIL"}, cells) +
         std::to_string(count(CheckLevel::kFail)) + " FAIL, " +
         std::to_string(count(CheckLevel::kWarn)) + " WARN, " +
         std::to_string(count(CheckLevel::kPass)) + " PASS\n";
}

// ---- init -------------------------------------------------------------------------------

json::value InitProgress::to_json() const {
  json::array dbs;
  for (const auto& d : databases) {
    dbs.push_back(json::object{{"database", d.database},
                               {"tables_done", d.tables_done},
                               {"tables_total", d.tables_total},
                               {"bytes_copied", d.bytes_copied},
                               {"bytes_total", d.bytes_total}});
  }
  return json::object{{"tables_done", tables_done},         {"tables_total", tables_total},
                      {"bytes_copied", bytes_copied},       {"bytes_total", bytes_total},
                      {"elapsed_seconds", elapsed_seconds}, {"databases", std::move(dbs)}};
}

std::string InitProgress::to_line() const {
  return "tables " + std::to_string(tables_done) + "/" + std::to_string(tables_total) + ", " +
         format_bytes(bytes_copied) + " of " + format_bytes(bytes_total) + ", " +
         fixed(elapsed_seconds, 1) + " s";
}

json::value InitReport::to_json() const {
  json::array steps_json;
  for (const auto& s : steps) {
    steps_json.push_back(json::object{{"database", s.database},
                                      {"step", s.step},
                                      {"outcome", s.outcome},
                                      {"seconds", s.seconds}});
  }
  json::array dbs;
  for (const auto& d : databases) {
    dbs.push_back(json::object{{"database", d.database},
                               {"publication", d.publication},
                               {"subscription", d.subscription},
                               {"tables", d.tables},
                               {"bytes", d.bytes},
                               {"copy_seconds", d.copy_seconds},
                               {"synced", d.synced}});
  }
  return json::object{{"synced", synced},
                      {"seconds", seconds},
                      {"roles_created", strings(roles_created)},
                      {"roles_skipped", strings(roles_skipped)},
                      {"databases", std::move(dbs)},
                      {"steps", std::move(steps_json)}};
}

std::string InitReport::to_table() const {
  std::vector<std::vector<std::string>> step_rows;
  for (const auto& s : steps) {
    step_rows.push_back({db_label(s.database), s.step, s.outcome, fixed(s.seconds, 3)});
  }
  std::vector<std::vector<std::string>> db_rows;
  for (const auto& d : databases) {
    db_rows.push_back({d.database, d.subscription, std::to_string(d.tables), format_bytes(d.bytes),
                       fixed(d.copy_seconds, 1), d.synced ? "yes" : "no"});
  }
  std::string out = render_table({"DATABASE", "STEP", "OUTCOME", "SECONDS"}, step_rows);
  out += "\n" +
         render_table({"DATABASE", "SUBSCRIPTION", "TABLES", "BYTES", "COPY S", "SYNCED"}, db_rows);
  if (!roles_created.empty()) {
    out += "roles created on green:";
    for (const auto& r : roles_created) out += " " + r;
    out += "\n";
  }
  out += std::string(synced ? "synced" : "NOT synced") + " in " + fixed(seconds, 1) + " s\n";
  return out;
}

// ---- status -----------------------------------------------------------------------------

bool StatusReport::has_alarms() const {
  return std::any_of(databases.begin(), databases.end(),
                     [](const auto& d) { return !d.alarms.empty(); });
}

json::value StatusReport::to_json() const {
  json::array dbs;
  for (const auto& d : databases) {
    json::object states;
    for (const auto& [k, v] : d.table_states) states[k] = v;
    json::array ddl;
    for (const auto& e : d.recent_ddl) {
      ddl.push_back(json::object{{"id", e.id},
                                 {"logged_at", e.logged_at},
                                 {"event", e.event},
                                 {"command_tag", e.command_tag},
                                 {"object_type", e.object_type},
                                 {"object_identity", e.object_identity},
                                 {"role", e.role},
                                 {"query", e.query}});
    }
    dbs.push_back(json::object{{"database", d.database},
                               {"state", d.state},
                               {"subscription", d.subscription},
                               {"green_reachable", d.green_reachable},
                               {"publication_exists", d.publication_exists},
                               {"subscription_exists", d.subscription_exists},
                               {"subscription_enabled", d.subscription_enabled},
                               {"apply_worker_running", d.apply_worker_running},
                               {"sync_workers", d.sync_workers},
                               {"slot_exists", d.slot_exists},
                               {"slot_active", d.slot_active},
                               {"wal_status", d.wal_status},
                               {"lag_bytes", opt(d.lag_bytes)},
                               {"lag_seconds", opt(d.lag_seconds)},
                               {"retained_wal_bytes", opt(d.retained_wal_bytes)},
                               {"last_heartbeat_applied", opt(d.last_heartbeat_applied)},
                               {"tables_total", d.tables_total},
                               {"tables_ready", d.tables_ready},
                               {"table_states", std::move(states)},
                               {"tables_not_ready", strings(d.tables_not_ready)},
                               {"ddl_count", d.ddl_count},
                               {"recent_ddl", std::move(ddl)},
                               {"apply_error_count", d.apply_error_count},
                               {"sync_error_count", d.sync_error_count},
                               {"alarms", strings(d.alarms)}});
  }
  return json::object{{"retained_wal_alarm_bytes", retained_wal_alarm_bytes},
                      {"alarm", has_alarms()},
                      {"databases", std::move(dbs)}};
}

std::string StatusReport::to_table() const {
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : databases) {
    rows.push_back(
        {d.database, d.state, std::to_string(d.tables_ready) + "/" + std::to_string(d.tables_total),
         d.lag_bytes ? format_bytes(*d.lag_bytes) : "-",
         d.lag_seconds ? fixed(*d.lag_seconds, 3) : "-",
         d.retained_wal_bytes ? format_bytes(*d.retained_wal_bytes) : "-",
         std::to_string(d.ddl_count), std::to_string(d.apply_error_count + d.sync_error_count)});
  }
  std::string out = render_table(
      {"DATABASE", "STATE", "READY", "LAG", "LAG S", "RETAINED WAL", "DDL", "ERRORS"}, rows);
  for (const auto& d : databases) {
    for (const auto& a : d.alarms) out += "ALARM [" + d.database + "] " + a + "\n";
    for (const auto& e : d.recent_ddl) {
      out += "DDL [" + d.database + "] " + e.logged_at + " " + e.command_tag + " " +
             e.object_identity + " by " + e.role + "\n";
    }
  }
  return out;
}

// ---- fence, sentinel, sequences ---------------------------------------------------------

namespace {

json::array fenced_databases_json(const std::vector<FencedDatabase>& databases) {
  json::array out;
  for (const auto& d : databases) {
    out.push_back(json::object{
        {"database", d.database}, {"oid", d.oid}, {"previous_connection_limit", d.previous_limit}});
  }
  return out;
}

}  // namespace

json::value FenceResult::to_json() const {
  json::array killed;
  for (const auto& t : terminated) {
    killed.push_back(json::object{{"pid", t.pid},
                                  {"user", t.user},
                                  {"database", t.database},
                                  {"application_name", t.application_name},
                                  {"backend_type", t.backend_type}});
  }
  return json::object{{"action", to_string(action)},
                      {"fenced_at", fenced_at},
                      {"label", label},
                      {"previous_setting", opt(previous_setting)},
                      {"databases", fenced_databases_json(databases)},
                      {"logins_disabled", json::value_from(logins_disabled)},
                      {"terminated", std::move(killed)},
                      {"seconds", seconds}};
}

std::string FenceResult::to_table() const {
  std::string out = "blue: " + std::string(to_string(action)) + " in " + fixed(seconds, 3) + " s";
  if (!fenced_at.empty()) out += " (fence record of " + fenced_at + ")";
  out += "\n";
  if (!databases.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : databases) rows.push_back({d.database, std::to_string(d.previous_limit)});
    out += (action == FenceAction::kUnfenced ? "connection limits restored:\n"
                                             : "logins of non-superusers blocked (CONNECTION "
                                               "LIMIT 0):\n") +
           render_table({"DATABASE", "PREVIOUS LIMIT"}, rows);
  }
  if (!logins_disabled.empty()) {
    std::string roles;
    for (const auto& r : logins_disabled) roles += (roles.empty() ? "" : ", ") + r;
    out += (action == FenceAction::kUnfenced ? "LOGIN again: " : "REPLICATION roles NOLOGIN: ") +
           roles + "\n";
  }
  if (!terminated.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : terminated) {
      rows.push_back(
          {std::to_string(t.pid), t.user, t.database, t.application_name, t.backend_type});
    }
    out += "terminated backends:\n" +
           render_table({"PID", "USER", "DATABASE", "APPLICATION", "TYPE"}, rows);
  }
  return out;
}

json::value FenceState::to_json() const {
  return json::object{{"recorded", recorded},
                      {"fenced_at", fenced_at},
                      {"label", label},
                      {"previous_setting", opt(previous_setting)},
                      {"databases", fenced_databases_json(databases)},
                      {"logins_disabled", json::value_from(logins_disabled)},
                      {"default_transaction_read_only", default_transaction_read_only}};
}

json::value SentinelResult::to_json() const {
  json::array dbs;
  for (const auto& d : databases) {
    dbs.push_back(
        json::object{{"database", d.database}, {"id", d.id}, {"wait_seconds", d.wait_seconds}});
  }
  return json::object{{"label", label}, {"seconds", seconds}, {"databases", std::move(dbs)}};
}

std::string SentinelResult::to_table() const {
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : databases) {
    rows.push_back({d.database, std::to_string(d.id), fixed(d.wait_seconds * 1000.0, 1)});
  }
  return render_table({"DATABASE", "SENTINEL ID", "WAIT MS"}, rows) + "sentinel '" + label +
         "' applied on green in " + fixed(seconds * 1000.0, 1) + " ms\n";
}

json::value SequenceCopyResult::to_json() const {
  json::array seqs;
  for (const auto& s : sequences) {
    seqs.push_back(json::object{{"database", s.database},
                                {"schema", s.schema},
                                {"name", s.name},
                                {"ownership", s.ownership},
                                {"last_value", s.last_value},
                                {"is_called", s.is_called}});
  }
  return json::object{{"count", static_cast<std::int64_t>(sequences.size())},
                      {"read_seconds", read_seconds},
                      {"write_seconds", write_seconds},
                      {"seconds", seconds},
                      {"sequences", std::move(seqs)}};
}

std::string SequenceCopyResult::to_table() const {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : sequences) {
    rows.push_back({s.database, s.schema + "." + s.name, s.ownership, std::to_string(s.last_value),
                    s.is_called ? "t" : "f"});
  }
  return render_table({"DATABASE", "SEQUENCE", "OWNERSHIP", "LAST_VALUE", "IS_CALLED"}, rows) +
         std::to_string(sequences.size()) + " sequences set on green in " +
         fixed(seconds * 1000.0, 1) + " ms\n";
}

json::value HeartbeatResult::to_json() const {
  json::object out;
  for (const auto& [database, id] : ids) out[database] = id;
  return out;
}

// ---- cleanup ----------------------------------------------------------------------------

std::size_t CleanupReport::dropped() const {
  return static_cast<std::size_t>(std::count_if(
      actions.begin(), actions.end(), [](const auto& a) { return a.action == "dropped"; }));
}

json::value CleanupReport::to_json() const {
  json::array items;
  for (const auto& a : actions) {
    items.push_back(json::object{
        {"side", a.side}, {"database", a.database}, {"object", a.object}, {"action", a.action}});
  }
  return json::object{{"dropped", static_cast<std::int64_t>(dropped())},
                      {"seconds", seconds},
                      {"actions", std::move(items)}};
}

std::string CleanupReport::to_table() const {
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : actions) rows.push_back({a.side, db_label(a.database), a.object, a.action});
  if (rows.empty()) return "nothing to clean up\n";
  return render_table({"SIDE", "DATABASE", "OBJECT", "ACTION"}, rows);
}

}  // namespace pgflip::replication
