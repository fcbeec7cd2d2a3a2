// precheck: PASS/WARN/FAIL rows for everything that breaks or degrades logical replication.
#include <algorithm>
#include <map>
#include <set>

#include "replication/manager.hpp"
#include "replication/sql.hpp"

namespace pgflip::replication {
namespace {

constexpr std::string_view kStep = "precheck";

/// The schema filter every per-table query shares; $1 is pgflip's schema.
constexpr std::string_view kUserSchemas =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' "
    "AND n.nspname !~ '^pg_temp_' AND n.nspname <> $1";

struct Column {
  std::string type;
  bool not_null = false;
  bool has_default = false;
  bool generated = false;
};
using TableColumns = std::map<std::string, std::vector<std::pair<std::string, Column>>>;

TableColumns read_columns(PgConnection& conn, const std::string& schema) {
  PgResult r = conn.exec(
      "SELECT format('%I.%I', n.nspname, c.relname), a.attname, "
      "format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef, a.attgenerated <> '' "
      "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
      "JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND " +
          std::string(kUserSchemas) + " ORDER BY 1, a.attnum",
      {schema}, kStep);
  TableColumns out;
  for (int i = 0; i < r.rows(); ++i) {
    out[r.text(i, 0)].push_back(
        {r.text(i, 1), Column{r.text(i, 2), r.boolean(i, 3), r.boolean(i, 4), r.boolean(i, 5)}});
  }
  return out;
}

}  // namespace

PrecheckReport Manager::precheck(const PrecheckOptions& options) const {
  PrecheckReport report;
  auto add = [&report](std::string database, std::string check, CheckLevel level,
                       std::string object, std::string detail, std::string fix = {}) {
    report.rows.push_back({std::move(database), std::move(check), level, std::move(object),
                           std::move(detail), std::move(fix)});
  };

  PgConnection blue = connect_maintenance(Side::kBlue, kStep);
  PgConnection green = connect_maintenance(Side::kGreen, kStep);
  const std::vector<DatabaseInfo> dbs = database_infos(blue);
  for (const auto& db : dbs) report.databases.push_back(db.name);
  const auto n = static_cast<std::int64_t>(dbs.size());
  const std::string ours = sql::like_prefix(names_.subscription_prefix());

  // ---- cluster: settings and limits --------------------------------------------------
  PgResult b = blue.exec(
      "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int, "
      "(SELECT count(*) FROM pg_replication_slots WHERE slot_name NOT LIKE $1), "
      "current_setting('max_wal_senders')::int, "
      "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender' "
      " AND coalesce(application_name, '') NOT LIKE $1), "
      "current_setting('server_version')",
      {ours}, kStep);
  PgResult g = green.exec(
      "SELECT current_setting('server_version'), "
      "coalesce(current_setting('max_active_replication_origins', true), "
      "         current_setting('max_replication_slots'))::int, "
      "current_setting('max_logical_replication_workers')::int, "
      "current_setting('max_worker_processes')::int, "
      "current_setting('max_sync_workers_per_subscription')::int, "
      "(SELECT count(*) FROM pg_subscription WHERE subname NOT LIKE $1), "
      "(SELECT count(*) FROM pg_subscription WHERE subenabled AND subname NOT LIKE $1)",
      {ours}, kStep);
  const std::string blue_version = b.text(0, 5);
  const std::string green_version = g.text(0, 0);
  const std::int64_t sync = g.int64(0, 4);
  const std::int64_t want = n * (1 + sync);  // apply + tablesync workers while copying
  add("", "versions", CheckLevel::kPass, "blue, green",
      "blue " + blue_version + ", green " + green_version);

  const std::string wal_level = b.text(0, 0);
  if (wal_level == "logical") {
    add("", "wal_level", CheckLevel::kPass, "blue", "wal_level = logical");
  } else {
    add("", "wal_level", CheckLevel::kFail, "blue",
        "wal_level = " + wal_level + ": logical decoding needs 'logical'",
        "ALTER SYSTEM SET wal_level = logical; then restart blue");
  }
  // A limit check: `free` of `limit` left after others' use; need n, better want.
  auto limit = [&](const std::string& object, const std::string& setting, std::int64_t max,
                   std::int64_t used, const std::string& server, const std::string& what) {
    const std::int64_t free = max - used;
    const std::string detail = setting + " = " + std::to_string(max) + ", " + std::to_string(used) +
                               " used by others, " + std::to_string(free) + " free; " +
                               std::to_string(n) + " needed for " + what + ", " +
                               std::to_string(want) + " while tables copy in parallel";
    const std::string fix = "ALTER SYSTEM SET " + setting + " = " + std::to_string(used + want) +
                            "; then restart " + server;
    if (free < n) {
      add("", setting, CheckLevel::kFail, object, detail, fix);
    } else if (free < want) {
      add("", setting, CheckLevel::kWarn, object,
          detail + ": the initial copy runs fewer tables at once (sync workers retry)", fix);
    } else {
      add("", setting, CheckLevel::kPass, object, detail);
    }
  };
  limit("blue", "max_replication_slots", b.int64(0, 1), b.int64(0, 2), "blue",
        "one slot per database");
  limit("blue", "max_wal_senders", b.int64(0, 3), b.int64(0, 4), "blue",
        "one walsender per database");
  limit(
      "green",
      green.server_version() >= 180000 ? "max_active_replication_origins" : "max_replication_slots",
      g.int64(0, 1), g.int64(0, 5), "green", "one replication origin per subscription");
  limit("green", "max_logical_replication_workers", g.int64(0, 2), g.int64(0, 6), "green",
        "one apply worker per subscription");
  const std::int64_t worker_processes = g.int64(0, 3);
  if (worker_processes < g.int64(0, 2) + 1) {
    add("", "max_worker_processes", CheckLevel::kWarn, "green",
        "max_worker_processes = " + std::to_string(worker_processes) +
            " is below max_logical_replication_workers + 1 (the launcher): workers will wait",
        "ALTER SYSTEM SET max_worker_processes = " + std::to_string(g.int64(0, 2) + 4) +
            "; then restart green");
  } else {
    add("", "max_worker_processes", CheckLevel::kPass, "green",
        "max_worker_processes = " + std::to_string(worker_processes));
  }

  // ---- cluster: roles ------------------------------------------------------------------
  {
    std::set<std::string> green_roles;
    PgResult gr = green.exec("SELECT rolname FROM pg_roles", kStep);
    for (int i = 0; i < gr.rows(); ++i) green_roles.insert(gr.text(i, 0));
    PgResult br = blue.exec(
        "SELECT rolname, format('CREATE ROLE %I WITH %s %s %s %s %s %s %s;', rolname, "
        "CASE WHEN rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END, "
        "CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END, "
        "CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END, "
        "CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END, "
        "CASE WHEN rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END, "
        "CASE WHEN rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END, "
        "CASE WHEN rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END), "
        "rolcanlogin FROM pg_roles WHERE rolname !~ '^pg_' AND oid <> 10 ORDER BY 1",
        kStep);
    int missing = 0;
    for (int i = 0; i < br.rows(); ++i) {
      const std::string role = br.text(i, 0);
      if (green_roles.contains(role)) continue;
      ++missing;
      if (options.role_copy_planned) continue;
      // A login role missing on green breaks clients after the switchover; a group role
      // breaks only ownership and grants, which the schema copy reports itself.
      const bool login = br.boolean(i, 2);
      add("", "roles", login ? CheckLevel::kFail : CheckLevel::kWarn, "role " + role,
          std::string("missing on green: ") +
              (login ? "its logins fail after the switchover; " : "") +
              "objects owned by or granted to it cannot be created there",
          br.text(i, 1) + "  -- on green; or run init with role copy (keeps the password)");
    }
    if (missing == 0) {
      add("", "roles", CheckLevel::kPass, "roles", "every role of blue exists on green");
    } else if (options.role_copy_planned) {
      add("", "roles", CheckLevel::kPass, "roles",
          std::to_string(missing) + " roles missing on green will be copied by init");
    }
  }

  // ---- cluster: other logical slots (CDC consumers) ------------------------------------
  {
    PgResult s = blue.exec(
        "SELECT slot_name, coalesce(plugin, ''), coalesce(database, ''), active "
        "FROM pg_replication_slots WHERE slot_type = 'logical' AND slot_name NOT LIKE $1 "
        "AND slot_name !~ '^pg_[0-9]+_sync_[0-9]+_' ORDER BY 1",
        {ours}, kStep);
    for (int i = 0; i < s.rows(); ++i) {
      add("", "logical_slots", CheckLevel::kWarn, "slot " + s.text(i, 0),
          "logical slot (plugin " + s.text(i, 1) + ", database " + s.text(i, 2) +
              (s.boolean(i, 3) ? ", active" : ", inactive") +
              ") of another consumer: it stays on blue; after the switchover the consumer "
              "must get a slot on green and re-anchor its position",
          "after the switchover: create the slot on green and restart the consumer from it");
    }
    if (s.rows() == 0) {
      add("", "logical_slots", CheckLevel::kPass, "blue", "no other logical slots on blue");
    }
  }

  // ---- per database ----------------------------------------------------------------------
  std::map<std::string, std::string> available;  // extension -> default version on green
  {
    PgResult a = green.exec(
        "SELECT name, coalesce(default_version, '') FROM "
        "pg_available_extensions",
        kStep);
    for (int i = 0; i < a.rows(); ++i) available[a.text(i, 0)] = a.text(i, 1);
  }
  for (const auto& db : dbs) {
    const std::string& d = db.name;
    PgConnection bdb = connect(Side::kBlue, d, kStep);
    const bool green_exists = green_database_exists(green, d);
    std::optional<PgConnection> gdb;
    if (green_exists) gdb.emplace(connect(Side::kGreen, d, kStep));
    std::int64_t green_user_tables = 0;
    if (gdb) {
      green_user_tables = gdb->exec(
                                 "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                 "c.relnamespace WHERE c.relkind IN ('r', 'p') AND " +
                                     std::string(kUserSchemas),
                                 {names_.schema}, kStep)
                              .int64(0, 0);
    }
    // Schema copy only runs into a database without user tables (see init).
    const bool schema_copy_will_run = options.schema_copy_planned && green_user_tables == 0;
    if (green_exists) {
      add(d, "green_database", CheckLevel::kPass, "database " + d,
          "exists on green (" + std::to_string(green_user_tables) + " user tables)");
    } else {
      add(d, "green_database", CheckLevel::kPass, "database " + d,
          "missing on green: init creates it (same encoding and locale as blue)");
    }

    // Replica identity.
    PgResult t = bdb.exec(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relreplident::text, "
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), "
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident), "
        "coalesce(s.n_tup_upd + s.n_tup_del, 0), "
        "(SELECT format('%I', ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = "
        "   i.indexrelid WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate "
        "   AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
        "   AND i.indnatts = i.indnkeyatts AND NOT EXISTS (SELECT 1 FROM "
        "   unnest(i.indkey::int2[]) k JOIN pg_attribute a ON a.attrelid = c.oid "
        "   AND a.attnum = k WHERE NOT a.attnotnull) ORDER BY i.indnatts, 1 LIMIT 1) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND " +
            std::string(kUserSchemas) + " ORDER BY 1",
        {names_.schema}, kStep);
    std::vector<std::string> published;
    int with_identity = 0;
    for (int i = 0; i < t.rows(); ++i) {
      const std::string table = t.text(i, 0);
      published.push_back(table);
      const std::string ident = t.text(i, 1);
      const bool ok =
          ident == "f" || (ident == "d" && t.boolean(i, 2)) || (ident == "i" && t.boolean(i, 3));
      if (ok) {
        ++with_identity;
        continue;
      }
      const std::int64_t changes = t.int64(i, 4);
      const std::string why =
          ident == "n" ? "REPLICA IDENTITY NOTHING" : "no primary key and no replica identity";
      const std::string fix = sql::replica_identity_fix(table, t.text(i, 5));
      if (changes > 0) {
        add(d, "replica_identity", CheckLevel::kFail, table,
            why + ": once published, every UPDATE and DELETE on blue fails (" +
                std::to_string(changes) + " updates/deletes seen on it)",
            fix);
      } else {
        add(d, "replica_identity", CheckLevel::kWarn, table,
            why + ": insert-only so far, but once published any UPDATE or DELETE on blue fails",
            fix);
      }
    }
    add(d, "replica_identity", CheckLevel::kPass, "tables",
        std::to_string(with_identity) + " of " + std::to_string(published.size()) +
            " tables have a replica identity");

    // Large objects.
    const std::int64_t large_objects =
        bdb.exec("SELECT count(*) FROM pg_largeobject_metadata", kStep).int64(0, 0);
    if (large_objects > 0) {
      add(d, "large_objects", CheckLevel::kFail, std::to_string(large_objects) + " large objects",
          "logical replication does not copy large objects: green would miss them",
          "move them into bytea columns, or remove them: SELECT lo_unlink(oid) FROM "
          "pg_largeobject_metadata;");
    } else {
      add(d, "large_objects", CheckLevel::kPass, "pg_largeobject", "no large objects");
    }

    // Relations logical replication skips.
    PgResult skipped = bdb.exec(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text, "
        "c.relpersistence::text FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE (c.relkind IN ('r', 'p') AND c.relpersistence = 'u' "
        "OR c.relkind IN ('f', 'm')) AND " +
            std::string(kUserSchemas) + " ORDER BY 1",
        {names_.schema}, kStep);
    int unlogged = 0, foreign = 0, matviews = 0;
    for (int i = 0; i < skipped.rows(); ++i) {
      const std::string rel = skipped.text(i, 0);
      const std::string kind = skipped.text(i, 1);
      if (kind == "m") {
        ++matviews;
        add(d, "materialized_views", CheckLevel::kWarn, rel,
            "materialized views are not replicated: green's copy stays as created (empty "
            "after a schema copy)",
            "on green before the switchover: REFRESH MATERIALIZED VIEW " + rel + ";");
      } else if (kind == "f") {
        ++foreign;
        add(d, "foreign_tables", CheckLevel::kWarn, rel,
            "foreign tables are not replicated: their data stays on the foreign server",
            "on green: create the foreign server and user mapping it needs");
      } else {
        ++unlogged;
        add(d, "unlogged_tables", CheckLevel::kWarn, rel,
            "unlogged tables are not replicated: green's table stays empty",
            "ALTER TABLE " + rel + " SET LOGGED;  -- on blue, or accept an empty table on green");
      }
    }
    if (unlogged == 0) add(d, "unlogged_tables", CheckLevel::kPass, "tables", "none");
    if (foreign == 0) add(d, "foreign_tables", CheckLevel::kPass, "tables", "none");
    if (matviews == 0) add(d, "materialized_views", CheckLevel::kPass, "views", "none");

    // Generated columns.
    PgResult gen = bdb.exec(
        "SELECT format('%I.%I', n.nspname, c.relname), a.attname FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE a.attgenerated = 's' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND " +
            std::string(kUserSchemas) + " ORDER BY 1, 2",
        {names_.schema}, kStep);
    for (int i = 0; i < gen.rows(); ++i) {
      add(d, "generated_columns", CheckLevel::kWarn, gen.text(i, 0) + "." + gen.text(i, 1),
          "generated columns are not replicated: green computes the value with its own "
          "expression, which must match blue's");
    }
    if (gen.rows() == 0) add(d, "generated_columns", CheckLevel::kPass, "columns", "none");

    // Triggers that fire during apply on green.
    const std::string trigger_sql =
        "SELECT format('%I.%I', n.nspname, c.relname), t.tgname, t.tgenabled::text "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND t.tgenabled IN ('R', 'A') AND " +
        std::string(kUserSchemas) + " ORDER BY 1, 2";
    int replica_triggers = 0;
    auto triggers = [&](PgConnection& conn, const std::string& side) {
      PgResult tr = conn.exec(trigger_sql, {names_.schema}, kStep);
      for (int i = 0; i < tr.rows(); ++i) {
        ++replica_triggers;
        const std::string how = tr.text(i, 2) == "A" ? "ALWAYS" : "REPLICA";
        add(d, "replica_triggers", CheckLevel::kWarn,
            tr.text(i, 0) + " trigger " + tr.text(i, 1) + " (" + side + ")",
            "enabled " + how + ": it fires on green while changes are applied" +
                (side == "blue" ? " (a schema copy carries the setting over)" : "") +
                ", so its side effects happen twice and rows it writes may collide",
            "ALTER TABLE " + tr.text(i, 0) + " ENABLE TRIGGER " + tr.text(i, 1) + ";  -- on " +
                side + ", if it must not run during apply");
      }
    };
    triggers(bdb, "blue");
    if (gdb) triggers(*gdb, "green");
    if (replica_triggers == 0) {
      add(d, "replica_triggers", CheckLevel::kPass, "triggers", "none enabled REPLICA/ALWAYS");
    }

    // Published tables: same columns on green.
    {
      const TableColumns blue_cols = read_columns(bdb, names_.schema);
      const TableColumns green_cols = gdb ? read_columns(*gdb, names_.schema) : TableColumns{};
      int missing_tables = 0;
      int differing = 0;
      for (const auto& table : published) {
        const auto bit = blue_cols.find(table);
        if (bit == blue_cols.end()) continue;
        const auto git = green_cols.find(table);
        if (git == green_cols.end()) {
          ++missing_tables;
          if (!schema_copy_will_run) {
            add(d, "columns", CheckLevel::kFail, table, "table missing on green",
                "pg_dump --schema-only --table='" + table +
                    "' (blue) | psql (green), or run "
                    "init with schema copy into an empty database");
          }
          continue;
        }
        for (const auto& [col, bc] : bit->second) {
          const auto gc = std::find_if(git->second.begin(), git->second.end(),
                                       [&name = col](const auto& c) { return c.first == name; });
          if (gc == git->second.end()) {
            ++differing;
            add(d, "columns", CheckLevel::kFail, table + "." + quote_ident(col),
                "column missing on green: applying changes to the table fails",
                "ALTER TABLE " + table + " ADD COLUMN " + quote_ident(col) + " " + bc.type +
                    ";  -- on green");
          } else if (gc->second.type != bc.type) {
            ++differing;
            add(d, "columns", CheckLevel::kWarn, table + "." + quote_ident(col),
                "type differs: blue " + bc.type + ", green " + gc->second.type +
                    ": values are converted through their text form and must fit");
          }
        }
        for (const auto& [col, gc] : git->second) {
          const bool on_blue =
              std::any_of(bit->second.begin(), bit->second.end(),
                          [&name = col](const auto& c) { return c.first == name; });
          if (!on_blue && gc.not_null && !gc.has_default && !gc.generated) {
            ++differing;
            add(d, "columns", CheckLevel::kFail, table + "." + quote_ident(col),
                "column only on green, NOT NULL without default: rows from blue fail",
                "ALTER TABLE " + table + " ALTER COLUMN " + quote_ident(col) +
                    " DROP NOT NULL;  -- on green, or give it a default");
          }
        }
      }
      // Rows already on green would be copied again by the initial copy: duplicate-key
      // errors, or silent duplicates in tables without a key. Only before init.
      const bool subscribed =
          gdb && gdb->exec(
                        "SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = "
                        "s.subdbid WHERE d.datname = current_database() AND s.subname = $1",
                        {db.subscription}, kStep)
                         .rows() > 0;
      std::vector<std::string> on_green;
      for (const auto& table : published) {
        if (green_cols.contains(table)) on_green.push_back(table);
      }
      if (gdb && !subscribed && !on_green.empty()) {
        PgResult filled = gdb->exec(sql::nonempty_tables_query(on_green), kStep);
        for (int i = 0; i < filled.rows(); ++i) {
          ++differing;
          add(d, "green_rows", CheckLevel::kFail, filled.text(i, 0),
              "already has rows on green: the initial copy would copy blue's rows again "
              "(duplicate-key errors, or duplicates in a table without a key)",
              "TRUNCATE " + filled.text(i, 0) + ";  -- on green, before init");
        }
      }
      if (missing_tables > 0 && schema_copy_will_run) {
        add(d, "columns", CheckLevel::kPass, "tables",
            std::to_string(missing_tables) + " tables will be created by the schema copy");
      }
      const bool compared = published.size() > static_cast<std::size_t>(missing_tables);
      if (differing == 0 && compared && (missing_tables == 0 || schema_copy_will_run)) {
        add(d, "columns", CheckLevel::kPass, "tables",
            std::to_string(published.size() - static_cast<std::size_t>(missing_tables)) +
                " published tables have the same columns on green");
      }
    }

    // Extensions.
    {
      std::set<std::string> green_ext;
      if (gdb) {
        PgResult ge = gdb->exec("SELECT extname FROM pg_extension", kStep);
        for (int i = 0; i < ge.rows(); ++i) green_ext.insert(ge.text(i, 0));
      }
      PgResult be = bdb.exec(
          "SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
          kStep);
      int ok = 0;
      for (int i = 0; i < be.rows(); ++i) {
        const std::string ext = be.text(i, 0);
        // NOLINTNEXTLINE(bugprone-branch-clone): two ways to be ok, the failure between them
        if (green_ext.contains(ext)) {
          ++ok;
        } else if (!available.contains(ext)) {
          add(d, "extensions", CheckLevel::kFail, "extension " + ext,
              "installed on blue (" + be.text(i, 1) + "), not available on green (PostgreSQL " +
                  green_version + "): objects using it cannot be created there",
              "install the extension's package for green's PostgreSQL version, then CREATE "
              "EXTENSION " +
                  quote_ident(ext) + ";");
        } else if (schema_copy_will_run) {  // the schema copy will create it
          ++ok;
        } else {
          add(d, "extensions", CheckLevel::kFail, "extension " + ext,
              "installed on blue, missing in this database on green",
              "CREATE EXTENSION " + quote_ident(ext) + ";  -- on green, database " +
                  quote_ident(d));
        }
      }
      if (ok == be.rows()) {
        add(d, "extensions", CheckLevel::kPass, "extensions",
            std::to_string(be.rows()) + " extensions present on green" +
                (schema_copy_will_run && be.rows() > 0 ? " (or created by the schema copy)" : ""));
      }
    }

    const std::int64_t sequences =
        bdb.exec(
               "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
               "c.relnamespace WHERE c.relkind = 'S' AND " +
                   std::string(kUserSchemas),
               {names_.schema}, kStep)
            .int64(0, 0);
    add(d, "sequences", CheckLevel::kPass, std::to_string(sequences) + " sequences",
        "not replicated; copied exactly at the switchover (after the fence)");
  }
  return report;
}

}  // namespace pgflip::replication
