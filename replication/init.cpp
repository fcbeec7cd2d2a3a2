// init: roles and schema, pgflip objects, publication, DDL trigger, subscription, progress.
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "replication/detail.hpp"
#include "replication/manager.hpp"
#include "replication/process.hpp"
#include "replication/sql.hpp"

namespace pgflip::replication {
namespace {

using detail::Clock;
using detail::seconds_since;

/// Connection string for pg_dump/pg_dumpall/psql (the password travels in PGPASSWORD).
std::string tool_conninfo(const ServerLogin& login, const std::string& database) {
  return conninfo_string({{"host", login.host},
                          {"port", std::to_string(login.port)},
                          {"user", login.user},
                          {"dbname", database},
                          {"sslmode", login.sslmode},
                          {"sslrootcert", login.sslrootcert},
                          {"sslcert", login.sslcert},
                          {"sslkey", login.sslkey}});
}

std::vector<std::pair<std::string, std::string>> tool_env(const ServerLogin& login,
                                                          const std::string& application) {
  std::vector<std::pair<std::string, std::string>> env = {{"PGAPPNAME", application},
                                                          {"PGOPTIONS", ""}};
  if (!login.password.empty()) env.emplace_back("PGPASSWORD", login.password);
  return env;
}

void check_tool(const ProcessResult& r, const std::string& database, const std::string& step,
                const std::string& tool) {
  if (r.timed_out) {
    throw ReplicationError(ErrorKind::kTimeout, database, step, tool + " did not finish in time",
                           "", r.err);
  }
  if (r.exit_code != 0) {
    throw ReplicationError(ErrorKind::kProcess, database, step,
                           tool + " failed with exit code " + std::to_string(r.exit_code), "",
                           r.err);
  }
}

/// Adds a step to the report and logs it as it happens (init can run for minutes).
void record(InitReport& report, InitStep step) {
  spdlog::info("replication init{}: {} {} ({:.3f} s)",
               step.database.empty() ? "" : " [" + step.database + "]", step.step, step.outcome,
               step.seconds);
  report.steps.push_back(std::move(step));
}

}  // namespace

InitReport Manager::init(const InitOptions& options) {
  const auto start = Clock::now();
  InitReport report;
  if (settings_.blue_conninfo_for_green.empty() && settings_.blue.user.empty()) {
    // Refused before anything is made: green's libpq would log in to blue as the operating-
    // system user green runs as ("role ... does not exist", reported from green).
    throw ReplicationError(
        ErrorKind::kState, "", "init",
        "green's subscriptions would reach blue without a user name (blue.admin_user and "
        "replication.blue_conninfo_for_green are both empty), so green would log in to blue as "
        "the operating-system user green runs as: set blue.admin_user (and "
        "blue.admin_password) to a superuser login on blue, or set "
        "replication.blue_conninfo_for_green");
  }
  if (options.require_clean_precheck) {
    const auto t = Clock::now();
    const PrecheckReport pre = precheck({options.copy_schema, options.copy_roles});
    if (pre.has_failures()) {
      std::string message = "precheck has " + std::to_string(pre.count(CheckLevel::kFail)) +
                            " FAIL rows; fix them (or run init without the precheck):";
      for (const auto& r : pre.rows) {
        if (r.level != CheckLevel::kFail) continue;
        message += "\n  [" + (r.database.empty() ? std::string("cluster") : r.database) + "] " +
                   r.check + " " + r.object + ": " + r.detail;
        if (!r.fix.empty()) message += "\n    fix: " + r.fix;
      }
      throw ReplicationError(ErrorKind::kState, "", "precheck", message);
    }
    record(report,
           {"", "precheck", "done: " + std::to_string(pre.count(CheckLevel::kWarn)) + " WARN",
            seconds_since(t)});
  }
  if (options.copy_roles) copy_roles(report);

  std::vector<DatabaseInfo> dbs;
  {
    PgConnection blue = connect_maintenance(Side::kBlue, "init");
    dbs = database_infos(blue);
  }
  for (const auto& db : dbs) init_database(db, options, report);
  if (options.wait_for_sync) {
    wait_for_sync(dbs, options, report);
  } else {
    for (const auto& db : dbs) {
      report.databases.push_back({db.name, names_.publication, db.subscription, 0, 0, 0, false});
    }
  }
  report.seconds = seconds_since(start);
  return report;
}

void Manager::copy_roles(InitReport& report) {
  constexpr std::string_view kStep = "role_copy";
  const auto t = Clock::now();
  PgConnection blue = connect_maintenance(Side::kBlue, kStep);
  PgConnection green = connect_maintenance(Side::kGreen, kStep);
  std::set<std::string> green_roles;
  PgResult gr = green.exec("SELECT rolname FROM pg_roles", kStep);
  for (int i = 0; i < gr.rows(); ++i) green_roles.insert(gr.text(i, 0));
  // The bootstrap superuser is green's business, whatever its name.
  const std::set<std::string> excluded = {
      blue.exec("SELECT rolname FROM pg_roles WHERE oid = 10", kStep).text(0, 0)};

  const ProcessResult dump =
      run_process({settings_.pg_bin_dir + "/pg_dumpall", "--roles-only",
                   "--dbname=" + tool_conninfo(settings_.blue, settings_.blue.maintenance_db)},
                  tool_env(settings_.blue, settings_.application_name), "",
                  Clock::now() + settings_.process_timeout);
  check_tool(dump, "", std::string(kStep), "pg_dumpall --roles-only");
  const sql::RoleScript script = sql::filter_role_dump(dump.out, green_roles, excluded);
  // One implicit transaction: every role or none.
  if (!script.sql.empty()) green.run(script.sql, kStep);
  report.roles_created = script.created_roles;
  report.roles_skipped = script.skipped_roles;
  record(report, {"", std::string(kStep),
                  "done: " + std::to_string(script.created_roles.size()) + " created, " +
                      std::to_string(script.skipped_roles.size()) + " already on green",
                  seconds_since(t)});
}

void Manager::copy_schema(const DatabaseInfo& db, const InitOptions& options, InitReport& report) {
  constexpr std::string_view kStep = "schema_copy";
  const auto t = Clock::now();
  {
    PgConnection green = connect(Side::kGreen, db.name, kStep);
    const std::int64_t tables =
        green
            .exec(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                "c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
                "('pg_catalog', 'information_schema', $1) AND n.nspname !~ '^pg_'",
                {names_.schema}, kStep)
            .int64(0, 0);
    if (tables > 0) {
      // Copying over an existing schema would fail half-way; a previous run (or the
      // operator) already created it.
      record(report, {db.name, std::string(kStep),
                      "skipped: green already has " + std::to_string(tables) + " user tables",
                      seconds_since(t)});
      return;
    }
  }
  std::vector<std::string> dump_args = {settings_.pg_bin_dir + "/pg_dump", "--schema-only",
                                        "--no-publications", "--no-subscriptions",
                                        "--exclude-schema=" + names_.schema};
  if (options.schema_no_owner) {
    dump_args.emplace_back("--no-owner");
    dump_args.emplace_back("--no-privileges");
  }
  dump_args.push_back("--dbname=" + tool_conninfo(settings_.blue, db.name));
  const auto deadline = Clock::now() + settings_.process_timeout;
  const ProcessResult dump =
      run_process(dump_args, tool_env(settings_.blue, settings_.application_name), "", deadline);
  check_tool(dump, db.name, std::string(kStep), "pg_dump --schema-only");
  // One transaction, committed by the script's own last line: if we die while feeding it,
  // psql reaches EOF without COMMIT and green's database stays empty for the next run
  // (psql --single-transaction would commit whatever it had read).
  const std::string script = "BEGIN;\n" + sql::filter_schema_dump(dump.out, names_) + "\nCOMMIT;\n";
  const ProcessResult apply =
      run_process({settings_.pg_bin_dir + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                   "--dbname=" + tool_conninfo(settings_.green, db.name), "-f", "-"},
                  tool_env(settings_.green, settings_.application_name), script, deadline);
  check_tool(apply, db.name, std::string(kStep), "psql (applying the schema to green)");
  record(report, {db.name, std::string(kStep),
                  "done: " + std::to_string(script.size()) + " bytes of DDL", seconds_since(t)});
}

void Manager::init_database(const DatabaseInfo& db, const InitOptions& options,
                            InitReport& report) {
  const std::string& d = db.name;
  auto step_done = [&](std::string step, std::string outcome, Clock::time_point t) {
    record(report, {d, std::move(step), std::move(outcome), seconds_since(t)});
  };

  // 1. The database on green.
  auto t = Clock::now();
  {
    constexpr std::string_view kStep = "green_database";
    PgConnection green = connect_maintenance(Side::kGreen, kStep);
    if (green_database_exists(green, d)) {
      step_done(std::string(kStep), "exists", t);
    } else {
      PgConnection blue = connect_maintenance(Side::kBlue, kStep);
      PgResult info = blue.exec(
          "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba) "
          "FROM pg_database WHERE datname = $1",
          {d}, kStep);
      const std::string owner = info.text(0, 3);
      const bool owner_on_green =
          green.exec("SELECT 1 FROM pg_roles WHERE rolname = $1", {owner}, kStep).rows() > 0;
      const std::string base = "CREATE DATABASE " + quote_ident(d) +
                               " TEMPLATE template0 ENCODING " + quote_literal(info.text(0, 0)) +
                               (owner_on_green ? " OWNER " + quote_ident(owner) : "");
      std::string outcome = "created";
      try {
        green.run(base + " LC_COLLATE " + quote_literal(info.text(0, 1)) + " LC_CTYPE " +
                      quote_literal(info.text(0, 2)),
                  kStep);
      } catch (const ReplicationError& e) {
        // Blue's locale may not exist on green's machine: fall back to C, say so.
        if (e.sqlstate() != "22023" && e.sqlstate() != "42809") throw;
        green.run(base + " LOCALE 'C'", kStep);
        outcome = "created with locale C (" + info.text(0, 1) + " not available on green)";
      }
      step_done(std::string(kStep), outcome, t);
    }
  }

  // 2. Schema.
  if (options.copy_schema) copy_schema(db, options, report);

  // 3. pgflip's objects on both sides, the publication and the DDL trigger on blue.
  t = Clock::now();
  PgConnection blue = connect(Side::kBlue, d, "pgflip_objects");
  PgConnection green = connect(Side::kGreen, d, "pgflip_objects");
  // Green first: when a re-run adds a column to a table blue already publishes, green must
  // have it before blue sends a row with it.
  green.run(sql::create_pgflip_tables(names_), "pgflip_objects");
  blue.run(sql::create_pgflip_tables(names_), "pgflip_objects");
  blue.run(sql::create_ddl_log_function(names_), "pgflip_objects");
  step_done("pgflip_objects", "done", t);

  t = Clock::now();
  if (blue.exec("SELECT 1 FROM pg_publication WHERE pubname = $1", {names_.publication},
                "publication")
          .rows() > 0) {
    step_done("publication", "exists", t);
  } else {
    blue.run("CREATE PUBLICATION " + quote_ident(names_.publication) + " FOR ALL TABLES",
             "publication");
    step_done("publication", "created " + names_.publication, t);
  }

  t = Clock::now();
  int created = 0;
  for (const bool drop_event : {false, true}) {
    const std::string& name = drop_event ? names_.event_trigger_drop : names_.event_trigger_end;
    if (blue.exec("SELECT 1 FROM pg_event_trigger WHERE evtname = $1", {name}, "ddl_trigger")
            .rows() == 0) {
      blue.run(sql::create_event_trigger(names_, drop_event), "ddl_trigger");
      ++created;
    }
  }
  step_done("ddl_trigger", created > 0 ? "created" : "exists", t);

  // 4. The subscription (it creates the slot on blue and starts the initial copy).
  t = Clock::now();
  constexpr std::string_view kSub = "subscription";
  const bool sub_exists =
      green
          .exec(
              "SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
              "WHERE d.datname = current_database() AND s.subname = $1",
              {db.subscription}, kSub)
          .rows() > 0;
  if (sub_exists) {
    step_done(std::string(kSub), "exists", t);
  } else {
    // A slot without its subscription is left from a run killed inside CREATE SUBSCRIPTION.
    PgResult slot = blue.exec("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                              {db.subscription}, kSub);
    if (slot.rows() > 0) {
      if (!slot.is_null(0, 0)) {
        blue.run("SELECT pg_terminate_backend($1::int, 5000)", {slot.text(0, 0)}, kSub);
      }
      blue.run("SELECT pg_drop_replication_slot($1)", {db.subscription}, kSub);
    }
    green.run("CREATE SUBSCRIPTION " + quote_ident(db.subscription) + " CONNECTION " +
                  quote_literal(blue_conninfo_for_green(d)) + " PUBLICATION " +
                  quote_ident(names_.publication) +
                  " WITH (copy_data = true, create_slot = true, enabled = true, slot_name = " +
                  quote_literal(db.subscription) + ")",
              kSub);
    step_done(std::string(kSub), "created " + db.subscription, t);
  }
  blue.run("INSERT INTO " + quote_ident(names_.schema) + ".heartbeat (kind) VALUES ('init')",
           "heartbeat");
}

void Manager::wait_for_sync(const std::vector<DatabaseInfo>& dbs, const InitOptions& options,
                            InitReport& report) {
  constexpr std::string_view kStep = "initial_copy";
  const auto start = Clock::now();
  struct Watch {
    const DatabaseInfo* db;
    PgConnection green;
    std::string subid;
    std::int64_t errors_at_start = 0;
    DatabaseProgress progress;
    std::optional<double> ready_after;
  };
  std::vector<Watch> watches;
  for (const auto& db : dbs) {
    PgConnection blue = connect(Side::kBlue, db.name, kStep);
    const std::int64_t bytes_total =
        blue.exec(
                "SELECT coalesce(sum(pg_table_size(format('%I.%I', schemaname, tablename)"
                "::regclass)), 0)::int8 FROM pg_publication_tables WHERE pubname = $1",
                {names_.publication}, kStep)
            .int64(0, 0);
    PgConnection green = connect(Side::kGreen, db.name, kStep);
    PgResult sub = green.exec(
        "SELECT s.oid::int8, coalesce(st.apply_error_count + st.sync_error_count, 0) "
        "FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
        "LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid "
        "WHERE d.datname = current_database() AND s.subname = $1",
        {db.subscription}, kStep);
    if (sub.rows() == 0) {
      throw ReplicationError(ErrorKind::kState, db.name, std::string(kStep),
                             "subscription " + db.subscription + " vanished from green");
    }
    Watch w{&db, std::move(green), sub.text(0, 0), sub.int64(0, 1), {}, std::nullopt};
    w.progress.database = db.name;
    w.progress.bytes_total = bytes_total;
    watches.push_back(std::move(w));
  }

  auto last_report = Clock::time_point{};
  const auto deadline = start + options.sync_timeout;
  const auto poll = std::min(options.progress_interval, std::chrono::milliseconds(100));
  const bool done = detail::poll_until(deadline, poll, [&] {
    InitProgress progress;
    bool all_ready = true;
    for (auto& w : watches) {
      PgResult r = w.green.exec(
          "SELECT count(*), count(*) FILTER (WHERE srsubstate IN ('r', 's')), "
          "count(*) FILTER (WHERE srsubstate = 'r'), "
          "coalesce(sum(pg_table_size(srrelid)), 0)::int8, "
          "(SELECT coalesce(apply_error_count + sync_error_count, 0) "
          " FROM pg_stat_subscription_stats WHERE subid = $1::oid) "
          "FROM pg_subscription_rel WHERE srsubid = $1::oid",
          {w.subid}, kStep);
      w.progress.tables_total = static_cast<int>(r.int64(0, 0));
      w.progress.tables_done = static_cast<int>(r.int64(0, 1));
      w.progress.bytes_copied = r.int64(0, 3);
      const bool ready = r.int64(0, 2) == r.int64(0, 0);
      if (ready && !w.ready_after) w.ready_after = seconds_since(start);
      all_ready = all_ready && ready;
      if (options.fail_on_sync_error && r.int64(0, 4) > w.errors_at_start) {
        throw ReplicationError(
            ErrorKind::kState, w.db->name, std::string(kStep),
            "green reports " + std::to_string(r.int64(0, 4) - w.errors_at_start) +
                " new apply/sync errors for subscription " + w.db->subscription +
                " (the message is in green's server log); fix the cause and run init again "
                "to resume, or cleanup");
      }
      progress.databases.push_back(w.progress);
      progress.tables_total += w.progress.tables_total;
      progress.tables_done += w.progress.tables_done;
      progress.bytes_copied += w.progress.bytes_copied;
      progress.bytes_total += w.progress.bytes_total;
    }
    progress.elapsed_seconds = seconds_since(start);
    if (options.on_progress &&
        (all_ready || Clock::now() - last_report >= options.progress_interval)) {
      last_report = Clock::now();
      options.on_progress(progress);
    }
    return all_ready;
  });

  report.synced = done;
  for (const auto& w : watches) {
    report.databases.push_back({w.db->name, names_.publication, w.db->subscription,
                                w.progress.tables_total, w.progress.bytes_total,
                                w.ready_after.value_or(seconds_since(start)),
                                w.ready_after.has_value()});
  }
  record(report, {"", std::string(kStep), done ? "done" : "timed out", seconds_since(start)});
  if (!done) {
    int ready = 0, total = 0;
    for (const auto& w : watches) {
      total += 1;
      ready += w.ready_after ? 1 : 0;
    }
    throw ReplicationError(ErrorKind::kTimeout, "", std::string(kStep),
                           "initial copy not finished after " +
                               std::to_string(options.sync_timeout.count()) + " ms (" +
                               std::to_string(ready) + " of " + std::to_string(total) +
                               " databases ready); run init again to keep waiting");
  }
}

}  // namespace pgflip::replication
