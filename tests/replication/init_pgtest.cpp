// Live tests of init and status: pgbench scale 10 PG15 -> PG17, lag under load, DDL tracking.
#include <doctest/doctest.h>

#include <algorithm>
#include <thread>

#include "pgtest_support.hpp"
#include "replication/detail.hpp"

namespace pgflip::replication::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string table_fingerprint(PgConnection& c) {
  return c
      .exec(
          "SELECT (SELECT count(*) FROM pgbench_accounts) || '/' || "
          "(SELECT count(*) FROM pgbench_tellers) || '/' || "
          "(SELECT count(*) FROM pgbench_branches) || '/' || "
          "(SELECT count(*) FROM pgbench_history) || '|' || "
          "(SELECT sum(abalance) FROM pgbench_accounts) || '/' || "
          "(SELECT sum(tbalance) FROM pgbench_tellers) || '/' || "
          "(SELECT sum(bbalance) FROM pgbench_branches) || '/' || "
          "coalesce((SELECT sum(delta) FROM pgbench_history), 0)",
          "test")
      .text(0, 0);
}

}  // namespace

TEST_CASE("pgbench scale 10: init with schema and role copy, lag under load, green equals blue") {
  TestRole owner("repl_owner");
  TestDatabase db("repl_bench");
  (void)pgbench({"-i", "-s", "10", "-q"}, db.name());
  {
    PgConnection b = blue(db.name());
    // A table owned by a role green lacks: the schema copy needs the role copy first.
    b.run("ALTER TABLE pgbench_branches OWNER TO " + quote_ident(owner.name()), "test");
  }
  Manager m(settings_for({db.name()}));

  const PrecheckReport pre = m.precheck({.schema_copy_planned = true, .role_copy_planned = true});
  INFO(pre.to_table());
  CHECK_FALSE(pre.has_failures());
  const auto history = pre.find("replica_identity", db.name());
  CHECK(std::any_of(history.begin(), history.end(), [](const PrecheckRow& r) {
    return r.object == "public.pgbench_history" && r.level == CheckLevel::kWarn;
  }));

  std::vector<InitProgress> progress;
  InitOptions options;
  options.copy_schema = true;
  options.copy_roles = true;
  options.progress_interval = 250ms;
  options.on_progress = [&](const InitProgress& p) { progress.push_back(p); };
  const InitReport report = m.init(options);
  MESSAGE("init:\n" << report.to_table());
  REQUIRE(report.synced);
  REQUIRE(report.databases.size() == 1);
  CHECK(report.databases[0].tables == 7);  // 4 pgbench tables + heartbeat, ddl_log, fence
  CHECK(report.databases[0].bytes > 100LL * 1024 * 1024);
  CHECK(std::find(report.roles_created.begin(), report.roles_created.end(), owner.name()) !=
        report.roles_created.end());
  REQUIRE_FALSE(progress.empty());
  CHECK(progress.back().tables_done == progress.back().tables_total);
  CHECK(progress.back().tables_total == 7);
  CHECK(progress.back().bytes_copied > 100LL * 1024 * 1024);
  for (std::size_t i = 1; i < progress.size(); ++i) {
    CHECK(progress[i].tables_done >= progress[i - 1].tables_done);
  }
  MESSAGE("progress reports: " << progress.size() << ", last: " << progress.back().to_line());

  {
    // The role arrived with its SCRAM secret, so the same password works on green.
    PgConnection b = blue();
    PgConnection g = green();
    const std::string q =
        "SELECT rolpassword FROM pg_authid WHERE rolname = '" + owner.name() + "'";
    const std::string secret = b.exec(q, "test").text(0, 0);
    CHECK(secret.starts_with("SCRAM-SHA-256$"));
    CHECK(g.exec(q, "test").text(0, 0) == secret);
    PgConnection gdb = green(db.name());
    CHECK(gdb.exec("SELECT tableowner FROM pg_tables WHERE tablename = 'pgbench_branches'", "test")
              .text(0, 0) == owner.name());
    CHECK(scalar(gdb, "SELECT count(*) FROM pgbench_accounts") == 1'000'000);
  }

  // Lag falls to about zero once the copy is done.
  StatusReport status;
  const bool caught_up = detail::poll_until(Clock::now() + 60s, 200ms, [&] {
    status = m.status();
    const DatabaseStatus& d = status.databases.at(0);
    return d.state == "streaming" && d.lag_seconds && *d.lag_seconds < 0.5;
  });
  INFO(status.to_table());
  REQUIRE(caught_up);
  CHECK(status.databases[0].tables_ready == 7);
  CHECK(status.databases[0].ddl_count == 0);
  CHECK_FALSE(status.has_alarms());
  std::int64_t idle_lag_bytes = -1;
  const bool bytes_settled = detail::poll_until(Clock::now() + 30s, 200ms, [&] {
    const StatusReport s = m.status({.write_heartbeat = false});
    idle_lag_bytes = s.databases.at(0).lag_bytes.value_or(-1);
    return idle_lag_bytes >= 0 && idle_lag_bytes < 64 * 1024;
  });
  CHECK(bytes_settled);
  MESSAGE("idle: lag " << status.databases[0].lag_seconds.value_or(-1) << " s, " << idle_lag_bytes
                       << " bytes");

  // Under a running pgbench load the lag stays bounded.
  constexpr int kClients = 4;
  constexpr int kTransactions = 6000;  // per client
  ProcessResult load_result;
  std::atomic<bool> load_done{false};
  const auto load_start = Clock::now();
  std::thread load([&] {
    load_result = run_process(
        {cluster().pg15_bin + "/pgbench", "-h", cluster().blue.host, "-p",
         std::to_string(cluster().blue.port), "-U", "postgres", "-n", "-c",
         std::to_string(kClients), "-j", "2", "-t", std::to_string(kTransactions), db.name()},
        {}, "", Clock::now() + 300s);
    load_done = true;
  });
  double max_lag_seconds = 0;
  std::int64_t max_lag_bytes = 0;
  int samples = 0;
  bool always_streaming = true;
  while (!load_done) {
    const StatusReport s = m.status();
    const DatabaseStatus& d = s.databases.at(0);
    always_streaming =
        always_streaming && d.state == "streaming" && d.apply_error_count + d.sync_error_count == 0;
    max_lag_seconds = std::max(max_lag_seconds, d.lag_seconds.value_or(0));
    max_lag_bytes = std::max(max_lag_bytes, d.lag_bytes.value_or(0));
    ++samples;
    std::this_thread::sleep_for(250ms);  // sampling rate, not synchronisation
  }
  load.join();
  const double load_seconds = detail::seconds_since(load_start);
  INFO("pgbench: " << load_result.err);
  REQUIRE(load_result.exit_code == 0);
  MESSAGE("load " << load_seconds << " s, " << samples << " status samples, max lag "
                  << max_lag_seconds << " s / " << max_lag_bytes << " bytes");
  CHECK(samples >= 5);
  CHECK(always_streaming);
  CHECK(max_lag_seconds < 5.0);

  // Drain to a sentinel, then green must equal blue exactly.
  const SentinelResult drained = m.write_sentinel_and_wait("after-load", 60s);
  MESSAGE("drained in " << drained.seconds * 1000 << " ms");
  {
    PgConnection b = blue(db.name());
    PgConnection g = green(db.name());
    CHECK(table_fingerprint(g) == table_fingerprint(b));
    // pgbench's TPC-B invariants, on green.
    CHECK(scalar(g, "SELECT count(*) FROM pgbench_history") == kClients * kTransactions);
    const std::int64_t delta = scalar(g, "SELECT sum(delta) FROM pgbench_history");
    CHECK(scalar(g, "SELECT sum(abalance) FROM pgbench_accounts") == delta);
    CHECK(scalar(g, "SELECT sum(tbalance) FROM pgbench_tellers") == delta);
    CHECK(scalar(g, "SELECT sum(bbalance) FROM pgbench_branches") == delta);
  }

  const CleanupReport cleaned = m.cleanup();
  MESSAGE("cleanup:\n" << cleaned.to_table());
  CHECK(cleaned.dropped() > 0);
  check_no_pgflip_objects(db.name());
  CHECK(m.cleanup().dropped() == 0);  // idempotent
}

TEST_CASE("DDL on blue after init shows up in status; pgflip's own DDL does not") {
  TestRole developer("repl_dev");
  TestDatabase db("repl_ddl");
  {
    PgConnection b = blue(db.name());
    b.run(
        "CREATE TABLE items (id int PRIMARY KEY, name text); "
        "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 100) g; "
        "GRANT CREATE ON SCHEMA public TO " +
            quote_ident(developer.name()),
        "test");
  }
  Manager m(settings_for({db.name()}));
  InitOptions options;
  options.copy_schema = true;
  options.copy_roles = true;  // the developer role must exist on green
  REQUIRE(m.init(options).synced);
  StatusReport before = m.status();
  CHECK(before.databases.at(0).ddl_count == 0);
  CHECK(before.databases.at(0).state == "streaming");

  // A superuser and an unprivileged role change the schema (the trigger is SECURITY
  // DEFINER, so the unprivileged one can log too).
  AppConnection admin(cluster().blue, db.name());
  REQUIRE(admin.run("ALTER TABLE items ADD COLUMN price numeric") == "");
  REQUIRE(admin.run("CREATE TEMP TABLE scratch (x int)") == "");  // not schema drift
  ServerLogin dev_login = cluster().blue;
  dev_login.user = developer.name();
  AppConnection dev(dev_login, db.name());
  REQUIRE(dev.run("CREATE TABLE dev_table (id int PRIMARY KEY)") == "");
  REQUIRE(dev.run("DROP TABLE dev_table") == "");

  const StatusReport after = m.status();
  const DatabaseStatus& d = after.databases.at(0);
  INFO(after.to_table());
  // ALTER TABLE; CREATE TABLE and its primary key index; the DROP (sql_drop). Not the temp table.
  CHECK(d.ddl_count == 4);
  REQUIRE(d.recent_ddl.size() == 4);
  auto entry = [&](std::string_view tag) -> const DdlEntry& {
    const auto it = std::find_if(d.recent_ddl.begin(), d.recent_ddl.end(),
                                 [&](const DdlEntry& e) { return e.command_tag == tag; });
    REQUIRE(it != d.recent_ddl.end());
    return *it;
  };
  CHECK(entry("ALTER TABLE").object_identity == "public.items");
  CHECK(entry("ALTER TABLE").query == "ALTER TABLE items ADD COLUMN price numeric");
  CHECK(entry("ALTER TABLE").role == "postgres");
  CHECK(entry("CREATE TABLE").role == developer.name());
  CHECK(entry("CREATE INDEX").object_identity == "public.dev_table_pkey");
  CHECK(entry("DROP TABLE").event == "sql_drop");
  CHECK(entry("DROP TABLE").object_identity == "public.dev_table");
  CHECK(d.recent_ddl.front().command_tag == "DROP TABLE");  // newest first
  CHECK(std::any_of(d.alarms.begin(), d.alarms.end(),
                    [](const std::string& a) { return a.find("DDL") != std::string::npos; }));
  CHECK(after.to_json().at("databases").at(0).at("ddl_count").as_int64() == 4);

  // Once the operator has applied it on green, acknowledging clears the alarm; DDL logged
  // after the acknowledged id stays.
  const std::int64_t newest = d.recent_ddl.front().id;
  REQUIRE(admin.run("CREATE INDEX items_name ON items (name)") == "");
  CHECK(m.acknowledge_ddl(newest) == 4);
  const DatabaseStatus later = m.status().databases.at(0);
  CHECK(later.ddl_count == 1);
  CHECK(later.recent_ddl.at(0).command_tag == "CREATE INDEX");
  CHECK(m.acknowledge_ddl() == 1);
  const DatabaseStatus clean = m.status().databases.at(0);
  CHECK(clean.ddl_count == 0);
  CHECK(clean.alarms.empty());
}

TEST_CASE("status of a database that was never initialized is 'absent'") {
  TestDatabase db("repl_absent");
  Manager m(settings_for({db.name()}));
  const StatusReport s = m.status();
  REQUIRE(s.databases.size() == 1);
  CHECK(s.databases[0].state == "absent");
  CHECK_FALSE(s.databases[0].lag_bytes.has_value());
  CHECK_FALSE(s.has_alarms());
}

}  // namespace pgflip::replication::test
