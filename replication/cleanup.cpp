// cleanup: find every pgflip object by name on both sides and drop it; idempotent, crash-proof.
#include <set>

#include <spdlog/spdlog.h>

#include "replication/detail.hpp"
#include "replication/manager.hpp"
#include "replication/sql.hpp"

namespace pgflip::replication {
namespace {

using detail::Clock;
constexpr std::string_view kStep = "cleanup";

/// Drops pgflip's function, tables and schema in one database. The fence record is kept
/// while it says blue is fenced (unfence needs it); the schema is kept if it holds
/// anything else.
void drop_pgflip_objects(PgConnection& conn, const ObjectNames& names, const std::string& side,
                         bool keep_fence_record, CleanupReport& report) {
  const std::string& db = conn.database();
  if (conn.exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {names.schema}, kStep).rows() ==
      0) {
    return;
  }
  const std::string s = quote_ident(names.schema);
  auto dropped = [&](const std::string& object) {
    report.actions.push_back({side, db, object, "dropped"});
  };
  if (conn.exec("SELECT to_regprocedure($1) IS NOT NULL", {s + ".log_ddl()"}, kStep)
          .boolean(0, 0)) {
    conn.run("DROP FUNCTION " + s + ".log_ddl()", kStep);
    dropped("function " + names.schema + ".log_ddl()");
  }
  for (const char* table : {"heartbeat", "ddl_log", "fence"}) {
    const std::string qualified = s + "." + table;
    if (!conn.exec("SELECT to_regclass($1) IS NOT NULL", {qualified}, kStep).boolean(0, 0)) {
      continue;
    }
    if (keep_fence_record && std::string_view(table) == "fence" &&
        conn.exec("SELECT count(*) FROM " + qualified, kStep).int64(0, 0) > 0) {
      report.actions.push_back({side, db, "table " + names.schema + ".fence",
                                "kept: blue is fenced by pgflip (unfence removes the record)"});
      continue;
    }
    conn.run("DROP TABLE " + qualified, kStep);
    dropped("table " + names.schema + "." + table);
  }
  try {
    conn.run("DROP SCHEMA " + s, kStep);  // RESTRICT: never takes anything else with it
    dropped("schema " + names.schema);
  } catch (const ReplicationError& e) {
    if (e.sqlstate() != "2BP01") throw;
    report.actions.push_back(
        {side, db, "schema " + names.schema, "kept: it holds other objects (" + e.detail() + ")"});
  }
}

}  // namespace

CleanupReport Manager::cleanup(const CleanupOptions& options) {
  const auto start = Clock::now();
  CleanupReport report;
  PgConnection blue = connect_maintenance(Side::kBlue, kStep);
  const std::string ours = sql::like_prefix(names_.subscription_prefix());

  // Where to look: the configured databases (or all of blue's), plus any database where
  // a subscription (green) or slot (blue) carries pgflip's names, plus blue's maintenance
  // database (the fence record).
  std::set<std::string> databases;
  if (settings_.databases.empty()) {
    for (const auto& db : database_infos(blue)) databases.insert(db.name);
  } else {
    databases.insert(settings_.databases.begin(), settings_.databases.end());
  }
  databases.insert(settings_.blue.maintenance_db);
  PgResult slots = blue.exec(
      "SELECT DISTINCT database FROM pg_replication_slots WHERE slot_name LIKE $1 "
      "AND database IS NOT NULL",
      {ours}, kStep);
  for (int i = 0; i < slots.rows(); ++i) databases.insert(slots.text(i, 0));
  std::optional<PgConnection> green;
  try {
    green.emplace(connect_maintenance(Side::kGreen, kStep));
    PgResult subs = green->exec(
        "SELECT DISTINCT d.datname FROM pg_subscription s JOIN pg_database d ON d.oid = "
        "s.subdbid WHERE s.subname LIKE $1",
        {ours}, kStep);
    for (int i = 0; i < subs.rows(); ++i) databases.insert(subs.text(i, 0));
  } catch (const ReplicationError& e) {
    // Blue's slots fill blue's disk: clean blue even when green is gone.
    if (e.kind() != ErrorKind::kConnection) throw;
    report.actions.push_back({"green", "", "all objects", "failed: " + e.server_message()});
  }

  for (const auto& database : databases) {
    // Green first: its subscription holds blue's slot.
    std::vector<std::string> slot_names;     // main slots the subscriptions used
    std::vector<std::string> sync_prefixes;  // "pg_<subid>_sync_": tablesync slots
    if (green && green_database_exists(*green, database)) {
      PgConnection g = connect(Side::kGreen, database, kStep);
      PgResult subs = g.exec(
          "SELECT s.oid::int8, s.subname, coalesce(s.subslotname::text, '') "
          "FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
          "WHERE d.datname = current_database() AND s.subname LIKE $1 ORDER BY 2",
          {ours}, kStep);
      for (int i = 0; i < subs.rows(); ++i) {
        const std::string name = quote_ident(subs.text(i, 1));
        if (!subs.text(i, 2).empty()) slot_names.push_back(subs.text(i, 2));
        sync_prefixes.push_back("pg_" + subs.text(i, 0) + "_sync_");
        // Detach the slot first: DROP SUBSCRIPTION then never fails because blue is
        // unreachable, and we drop the slot on blue ourselves below.
        g.run("ALTER SUBSCRIPTION " + name + " DISABLE", kStep);
        g.run("ALTER SUBSCRIPTION " + name + " SET (slot_name = NONE)", kStep);
        g.run("DROP SUBSCRIPTION " + name, kStep);
        report.actions.push_back({"green", database, "subscription " + subs.text(i, 1), "dropped"});
      }
      drop_pgflip_objects(g, names_, "green", false, report);
    }

    PgResult exists = blue.exec("SELECT 1 FROM pg_database WHERE datname = $1", {database}, kStep);
    if (exists.rows() == 0) continue;
    PgConnection b = connect(Side::kBlue, database, kStep);
    for (const auto& trigger : {names_.event_trigger_end, names_.event_trigger_drop}) {
      if (b.exec("SELECT 1 FROM pg_event_trigger WHERE evtname = $1", {trigger}, kStep).rows() >
          0) {
        b.run("DROP EVENT TRIGGER " + quote_ident(trigger), kStep);
        report.actions.push_back({"blue", database, "event trigger " + trigger, "dropped"});
      }
    }
    if (b.exec("SELECT 1 FROM pg_publication WHERE pubname = $1", {names_.publication}, kStep)
            .rows() > 0) {
      b.run("DROP PUBLICATION " + quote_ident(names_.publication), kStep);
      report.actions.push_back({"blue", database, "publication " + names_.publication, "dropped"});
    }
    // Our slots in this database: by prefix, by the names green's subscriptions used, and
    // the tablesync slots of those subscriptions (left behind when init died mid-copy).
    PgResult ours_here = b.exec(
        "SELECT slot_name::text FROM pg_replication_slots WHERE database = current_database() "
        "AND (slot_name LIKE $1 OR slot_name = ANY ($2::text[]) OR EXISTS (SELECT 1 FROM "
        "unnest($3::text[]) p WHERE starts_with(slot_name::text, p))) ORDER BY 1",
        {ours, text_array_literal(slot_names), text_array_literal(sync_prefixes)}, kStep);
    for (int i = 0; i < ours_here.rows(); ++i) {
      const std::string slot = ours_here.text(i, 0);
      const auto deadline = Clock::now() + options.slot_release_timeout;
      bool terminated = false;
      const bool gone = detail::poll_until(
          deadline + options.slot_release_timeout, std::chrono::milliseconds(20), [&] {
            PgResult s = b.exec("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                                {slot}, kStep);
            if (s.rows() == 0) return true;
            if (!s.is_null(0, 0)) {
              // The walsender normally exits once green's worker is gone; past the
              // release timeout, end it.
              if (Clock::now() >= deadline && !terminated) {
                b.run("SELECT pg_terminate_backend($1::int, 5000)", {s.text(0, 0)}, kStep);
                terminated = true;
              }
              return false;
            }
            try {
              b.run("SELECT pg_drop_replication_slot($1)", {slot}, kStep);
              return true;
            } catch (const ReplicationError& e) {
              // 55006: it became active again between the check and the drop.
              if (e.sqlstate() != "55006" && e.sqlstate() != "42704") throw;
              return e.sqlstate() == "42704";
            }
          });
      if (!gone) {
        throw ReplicationError(ErrorKind::kTimeout, database, std::string(kStep),
                               "replication slot " + slot +
                                   " stayed active; drop it by hand: "
                                   "SELECT pg_drop_replication_slot('" +
                                   slot + "');");
      }
      report.actions.push_back({"blue", database, "replication slot " + slot, "dropped"});
    }
    drop_pgflip_objects(b, names_, "blue", true, report);
  }
  report.seconds = detail::seconds_since(start);
  for (const auto& a : report.actions) {
    spdlog::info("replication cleanup: {} [{}] {}: {}", a.side, a.database, a.object, a.action);
  }
  return report;
}

}  // namespace pgflip::replication
