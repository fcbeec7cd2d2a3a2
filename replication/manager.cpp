// Manager basics (connections, database list, names) plus heartbeat and status.
#include "replication/manager.hpp"

#include <algorithm>
#include <utility>

#include "replication/detail.hpp"

namespace pgflip::replication {

Manager::Manager(Settings settings)
    : settings_(std::move(settings)), names_(ObjectNames::for_prefix(settings_.name_prefix)) {
  if (!valid_name_prefix(settings_.name_prefix)) {
    throw ReplicationError(ErrorKind::kState, "", "settings",
                           "name_prefix '" + settings_.name_prefix +
                               "' must be 1-40 characters of [a-z0-9_], starting with a letter");
  }
  if (settings_.application_name.empty()) {
    // The fence recognises pgflip's own sessions by this name.
    throw ReplicationError(ErrorKind::kState, "", "settings", "application_name must not be empty");
  }
  connect_options_.application_name = settings_.application_name;
  connect_options_.connect_timeout = settings_.connect_timeout;
  connect_options_.statement_timeout = settings_.statement_timeout;
}

PgConnection Manager::connect(Side side, const std::string& database, std::string_view step) const {
  return PgConnection::open(side == Side::kBlue ? settings_.blue : settings_.green, database,
                            connect_options_, step);
}

PgConnection Manager::connect_maintenance(Side side, std::string_view step) const {
  const ServerLogin& login = side == Side::kBlue ? settings_.blue : settings_.green;
  return PgConnection::open(login, login.maintenance_db, connect_options_, step);
}

std::string Manager::system_identifier(Side side) const {
  PgConnection conn = connect_maintenance(side, "system_identifier");
  return conn
      .exec("SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
            "system_identifier")
      .text(0, 0);
}

std::vector<std::string> Manager::databases() const {
  PgConnection blue = connect_maintenance(Side::kBlue, "databases");
  std::vector<std::string> out;
  for (const auto& db : database_infos(blue)) out.push_back(db.name);
  return out;
}

std::vector<Manager::DatabaseInfo> Manager::database_infos(PgConnection& blue) const {
  PgResult r = blue.exec(
      "SELECT datname, oid::int8 FROM pg_database WHERE NOT datistemplate AND datallowconn "
      "ORDER BY datname",
      "databases");
  std::vector<DatabaseInfo> all;
  for (int i = 0; i < r.rows(); ++i) {
    DatabaseInfo db;
    db.name = r.text(i, 0);
    db.blue_oid = static_cast<std::uint32_t>(r.int64(i, 1));
    db.subscription = names_.subscription(db.name, db.blue_oid);
    all.push_back(std::move(db));
  }
  if (settings_.databases.empty()) return all;
  std::vector<DatabaseInfo> chosen;
  for (const auto& name : settings_.databases) {
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& d) { return d.name == name; });
    if (it == all.end()) {
      throw ReplicationError(ErrorKind::kState, name, "databases",
                             "database does not exist on blue (or is a template)");
    }
    chosen.push_back(*it);
  }
  return chosen;
}

bool Manager::green_database_exists(PgConnection& green, const std::string& database) const {
  return green.exec("SELECT 1 FROM pg_database WHERE datname = $1", {database}, "databases")
             .rows() > 0;
}

std::string Manager::blue_conninfo_for_green(const std::string& database) const {
  if (!settings_.blue_conninfo_for_green.empty()) {
    return settings_.blue_conninfo_for_green + " " + conninfo_string({{"dbname", database}});
  }
  const ServerLogin& b = settings_.blue;
  return conninfo_string({{"host", b.host},
                          {"port", std::to_string(b.port)},
                          {"user", b.user},
                          {"password", b.password},
                          {"dbname", database}});
}

HeartbeatResult Manager::heartbeat() {
  HeartbeatResult result;
  PgConnection maintenance = connect_maintenance(Side::kBlue, "heartbeat");
  const std::string hb = quote_ident(names_.schema) + ".heartbeat";
  for (const auto& db : database_infos(maintenance)) {
    PgConnection blue = connect(Side::kBlue, db.name, "heartbeat");
    if (blue.exec("SELECT to_regclass($1) IS NOT NULL", {hb}, "heartbeat").boolean(0, 0)) {
      result.ids[db.name] =
          blue.exec("INSERT INTO " + hb + " (kind) VALUES ('beat') RETURNING id", "heartbeat")
              .int64(0, 0);
      // Old beats are of no use to the lag measure; the DELETE replicates like any change.
      blue.run("DELETE FROM " + hb +
                   " WHERE kind = 'beat' AND written_at < clock_timestamp() - interval '10 "
                   "minutes' AND id < $1::int8",
               {std::to_string(result.ids[db.name])}, "heartbeat");
    }
  }
  return result;
}

std::int64_t Manager::acknowledge_ddl(std::optional<std::int64_t> up_to_id) {
  constexpr std::string_view kStep = "acknowledge_ddl";
  PgConnection maintenance = connect_maintenance(Side::kBlue, kStep);
  const std::string ddl = quote_ident(names_.schema) + ".ddl_log";
  std::int64_t removed = 0;
  for (const auto& db : database_infos(maintenance)) {
    PgConnection blue = connect(Side::kBlue, db.name, kStep);
    if (!blue.exec("SELECT to_regclass($1) IS NOT NULL", {ddl}, kStep).boolean(0, 0)) continue;
    removed +=
        blue.exec("WITH gone AS (DELETE FROM " + ddl +
                      " WHERE $1::int8 IS NULL OR id <= $1::int8 RETURNING 1) "
                      "SELECT count(*) FROM gone",
                  {up_to_id ? std::optional(std::to_string(*up_to_id)) : std::nullopt}, kStep)
            .int64(0, 0);
  }
  return removed;
}

StatusReport Manager::status(const StatusOptions& options) {
  StatusReport report;
  report.retained_wal_alarm_bytes = settings_.retained_wal_alarm_bytes;
  PgConnection maintenance = connect_maintenance(Side::kBlue, "status");
  for (const auto& db : database_infos(maintenance)) {
    report.databases.push_back(database_status(db, options));
  }
  return report;
}

DatabaseStatus Manager::database_status(const DatabaseInfo& db, const StatusOptions& options) {
  constexpr std::string_view kStep = "status";
  DatabaseStatus st;
  st.database = db.name;
  st.subscription = db.subscription;
  const std::string hb = quote_ident(names_.schema) + ".heartbeat";
  const std::string ddl = quote_ident(names_.schema) + ".ddl_log";

  // Green's connections are opened first so that green is read right after the heartbeat
  // is written: lag_seconds then measures replication, not our own connection set-up.
  std::optional<PgConnection> green;
  try {
    PgConnection green_maintenance = connect_maintenance(Side::kGreen, kStep);
    if (green_database_exists(green_maintenance, db.name)) {
      green.emplace(connect(Side::kGreen, db.name, kStep));
    }
  } catch (const ReplicationError& e) {
    // Blue's side (retained WAL above all) still matters when green is gone.
    if (e.kind() != ErrorKind::kConnection) throw;
    st.green_reachable = false;
    st.alarms.push_back("green unreachable: " + e.server_message());
  }
  const bool green_heartbeat =
      green && green->exec("SELECT to_regclass($1) IS NOT NULL", {hb}, kStep).boolean(0, 0);

  PgConnection blue = connect(Side::kBlue, db.name, kStep);
  PgResult objects = blue.exec(
      "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, "
      "EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $3)",
      {hb, ddl, names_.publication}, kStep);
  const bool blue_heartbeat = objects.boolean(0, 0);
  const bool blue_ddl_log = objects.boolean(0, 1);
  st.publication_exists = objects.boolean(0, 2);
  if (blue_heartbeat && options.write_heartbeat) {
    blue.run("INSERT INTO " + hb + " (kind) VALUES ('beat')", kStep);
  }
  std::optional<std::int64_t> green_heartbeat_max;  // set when green has the table
  if (green_heartbeat) {
    green_heartbeat_max = green->exec("SELECT coalesce(max(id), 0) FROM " + hb, kStep).int64(0, 0);
    if (*green_heartbeat_max > 0) st.last_heartbeat_applied = green_heartbeat_max;
  }
  if (blue_heartbeat && green_heartbeat_max) {
    // Lag in seconds: age of the oldest heartbeat that green has not applied yet (0 when
    // green has the newest), all on blue's clock.
    st.lag_seconds =
        blue.exec(
                "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(written_at)), 0)"
                "::float8 FROM " +
                    hb + " WHERE id > $1::int8",
                {std::to_string(*green_heartbeat_max)}, kStep)
            .float64(0, 0);
  }

  PgResult slot = blue.exec(
      "SELECT active, coalesce(wal_status, ''), "
      "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8, "
      "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 "
      "FROM pg_replication_slots WHERE slot_name = $1",
      {db.subscription}, kStep);
  if (slot.rows() > 0) {
    st.slot_exists = true;
    st.slot_active = slot.boolean(0, 0);
    st.wal_status = slot.text(0, 1);
    st.lag_bytes = slot.opt_int64(0, 2);
    st.retained_wal_bytes = slot.opt_int64(0, 3);
  }
  if (blue_ddl_log) {
    st.ddl_count = blue.exec("SELECT count(*) FROM " + ddl, kStep).int64(0, 0);
    PgResult entries = blue.exec(
        "SELECT id, logged_at::text, event, command_tag, coalesce(object_type, ''), "
        "coalesce(object_identity, ''), role_name, coalesce(query, '') FROM " +
            ddl + " ORDER BY id DESC LIMIT $1::int",
        {std::to_string(std::max(0, options.ddl_entries))}, kStep);
    for (int i = 0; i < entries.rows(); ++i) {
      st.recent_ddl.push_back({entries.int64(i, 0), entries.text(i, 1), entries.text(i, 2),
                               entries.text(i, 3), entries.text(i, 4), entries.text(i, 5),
                               entries.text(i, 6), entries.text(i, 7)});
    }
  }

  if (green) {
    PgResult sub = green->exec(
        "SELECT s.oid::int8, s.subenabled FROM pg_subscription s "
        "JOIN pg_database d ON d.oid = s.subdbid "
        "WHERE d.datname = current_database() AND s.subname = $1",
        {db.subscription}, kStep);
    if (sub.rows() > 0) {
      st.subscription_exists = true;
      st.subscription_enabled = sub.boolean(0, 1);
      const std::string subid = sub.text(0, 0);
      PgResult rels = green->exec(
          "SELECT srsubstate::text, srrelid::regclass::text FROM pg_subscription_rel "
          "WHERE srsubid = $1::oid ORDER BY 2",
          {subid}, kStep);
      for (int i = 0; i < rels.rows(); ++i) {
        const std::string state = rels.text(i, 0);
        ++st.table_states[state];
        ++st.tables_total;
        if (state == "r") {
          ++st.tables_ready;
        } else {
          st.tables_not_ready.push_back(rels.text(i, 1) + " (" + state + ")");
        }
      }
      PgResult workers = green->exec(
          "SELECT count(*) FILTER (WHERE relid IS NULL), count(*) FILTER (WHERE relid IS NOT "
          "NULL) FROM pg_stat_subscription WHERE subid = $1::oid AND pid IS NOT NULL",
          {subid}, kStep);
      st.apply_worker_running = workers.int64(0, 0) > 0;
      st.sync_workers = static_cast<int>(workers.int64(0, 1));
      PgResult errors = green->exec(
          "SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats "
          "WHERE subid = $1::oid",
          {subid}, kStep);
      if (errors.rows() > 0) {
        st.apply_error_count = errors.int64(0, 0);
        st.sync_error_count = errors.int64(0, 1);
      }
    }
  }

  if (!st.green_reachable) {
    st.state = "green_unreachable";
  } else if (!st.publication_exists && !st.subscription_exists && !st.slot_exists) {
    st.state = "absent";
  } else if (!st.publication_exists || !st.subscription_exists || !st.slot_exists) {
    st.state = "incomplete";
  } else if (!st.subscription_enabled || !st.apply_worker_running) {
    st.state = "stopped";
  } else if (st.tables_ready < st.tables_total) {
    st.state = "copying";
  } else {
    st.state = "streaming";
  }

  if (st.state == "incomplete") {
    st.alarms.push_back(std::string("incomplete setup: publication ") +
                        (st.publication_exists ? "present" : "MISSING") + ", slot " +
                        (st.slot_exists ? "present" : "MISSING") + ", subscription " +
                        (st.subscription_exists ? "present" : "MISSING") +
                        "; run init again, or cleanup");
  }
  if (st.retained_wal_bytes && *st.retained_wal_bytes > settings_.retained_wal_alarm_bytes) {
    st.retained_wal_alarm = true;
    st.alarms.push_back("slot " + db.subscription + " retains " +
                        format_bytes(*st.retained_wal_bytes) + " of WAL on blue (alarm at " +
                        format_bytes(settings_.retained_wal_alarm_bytes) + ")");
  }
  if (st.wal_status == "unreserved" || st.wal_status == "lost") {
    st.alarms.push_back("slot wal_status is '" + st.wal_status +
                        "': blue is about to remove (or removed) WAL green still needs");
  }
  if (st.subscription_exists && !st.subscription_enabled) {
    st.alarms.push_back("subscription is disabled on green");
  } else if (st.subscription_exists && !st.apply_worker_running) {
    st.alarms.push_back("apply worker is not running on green (see green's server log)");
  }
  if (st.apply_error_count + st.sync_error_count > 0) {
    st.alarms.push_back(std::to_string(st.apply_error_count) + " apply and " +
                        std::to_string(st.sync_error_count) +
                        " sync errors on green (messages are in green's server log)");
  }
  if (st.ddl_count > 0) {
    st.alarms.push_back(std::to_string(st.ddl_count) +
                        " DDL commands on blue since init: DDL is not replicated, apply them "
                        "on green (the switchover refuses until then)");
  }
  return st;
}

}  // namespace pgflip::replication
