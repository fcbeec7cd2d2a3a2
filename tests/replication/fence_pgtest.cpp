// Live tests of the fence: no non-superuser write gets through, a subscriber on blue still
// applies, idempotent, undone exactly (also after a restart or an interrupted unfence).
#include <doctest/doctest.h>

#include <algorithm>

#include "pgtest_support.hpp"
#include "replication/detail.hpp"

namespace pgflip::replication::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kTooMany = "too many connections for database";
constexpr std::string_view kNoLogin = "is not permitted to log in";

/// Logs in (`replication` as for AppConnection) and runs `statements` in order: "53300" when
/// the login is refused for the connection limit, "28000" for NOLOGIN, else the SQLSTATE of
/// the first statement that fails, else "" (every statement worked, the write included).
std::string try_write(const ServerLogin& login, const std::string& database,
                      const std::vector<std::string>& statements,
                      const std::string& replication = "") {
  const std::string refused = login_refusal(login, database, replication);
  if (refused.find(kTooMany) != std::string::npos) return "53300";
  if (refused.find(kNoLogin) != std::string::npos) return "28000";
  REQUIRE_MESSAGE(refused.empty(), refused);
  AppConnection conn(login, database, "app", replication);
  for (const auto& s : statements) {
    if (std::string code = conn.run(s); !code.empty()) return code;
  }
  return "";
}

/// Each database's connection limit, each role's LOGIN and blue's postgresql.auto.conf, as
/// text, over a new superuser connection (a fence terminates the ones opened before it).
std::string limits_and_auto_conf() {
  PgConnection b = blue();
  std::string out;
  for (const char* sql :
       {"SELECT string_agg(datname || '=' || datconnlimit, ' ' ORDER BY datname) FROM pg_database",
        "SELECT string_agg(rolname || '=' || rolcanlogin, ' ' ORDER BY rolname) FROM pg_roles",
        "SELECT pg_read_file('postgresql.auto.conf')"}) {
    out += b.exec(sql, "test").text(0, 0) + "\n";
  }
  return out;
}

/// One value, over a new superuser connection to `database` on blue.
std::int64_t blue_scalar(const std::string& database, const std::string& sql) {
  PgConnection conn = blue(database);
  return scalar(conn, sql);
}

bool was_terminated(const FenceResult& f, int pid) {
  return std::any_of(f.terminated.begin(), f.terminated.end(),
                     [&](const TerminatedBackend& t) { return t.pid == pid; });
}

/// Unfences blue whatever happens in the test: a fenced blue would break every later test.
struct UnfenceAtExit {
  ~UnfenceAtExit() {
    try {
      (void)Manager(settings_for({"postgres"})).unfence();
    } catch (...) {
    }
  }
};

}  // namespace

TEST_CASE("fence: writes fail and reads work for other clients; unfence after a restart") {
  TestDatabase db("repl_fence");
  UnfenceAtExit unfence_guard;
  blue(db.name()).run("CREATE TABLE t (id int PRIMARY KEY)", "test");
  AppConnection before(cluster().blue, db.name());
  REQUIRE(before.run("INSERT INTO t VALUES (1)") == "");

  Manager m(settings_for({db.name()}));
  const FenceResult f = m.fence(labelled("switchover-42"));
  INFO(f.to_table());
  CHECK(f.action == FenceAction::kFenced);
  CHECK_FALSE(f.previous_setting.has_value());
  CHECK(std::any_of(f.terminated.begin(), f.terminated.end(),
                    [&](const TerminatedBackend& t) { return t.pid == before.backend_pid(); }));
  CHECK(before.run("SELECT 1") != "");  // that session was terminated

  {
    AppConnection during(cluster().blue, db.name());
    CHECK(during.run("INSERT INTO t VALUES (2)") == "25006");  // read_only_sql_transaction
    CHECK(during.run("CREATE TABLE t2 (x int)") == "25006");
    CHECK(during.run("SELECT count(*) FROM t") == "");
  }

  // Fencing again changes nothing and keeps the original record.
  const FenceResult again = m.fence(labelled("other"));
  CHECK(again.action == FenceAction::kAlreadyFenced);
  CHECK(again.label == "switchover-42");
  CHECK(again.fenced_at == f.fenced_at);
  const FenceState state = m.fence_state();
  CHECK(state.recorded);
  CHECK(state.label == "switchover-42");
  CHECK(state.default_transaction_read_only == "on");

  // A restarted pgflip knows nothing but what blue recorded, and can unfence.
  Manager restarted(settings_for({db.name()}));
  const FenceResult u = restarted.unfence();
  CHECK(u.action == FenceAction::kUnfenced);
  CHECK(u.fenced_at == f.fenced_at);
  {
    AppConnection after(cluster().blue, db.name());
    CHECK(after.run("INSERT INTO t VALUES (3)") == "");
  }
  CHECK(restarted.unfence().action == FenceAction::kNotFenced);
  const FenceState lifted = m.fence_state();
  CHECK_FALSE(lifted.recorded);
  CHECK(lifted.default_transaction_read_only == "off");

  // The fence record's table goes with cleanup once blue is no longer fenced.
  (void)m.cleanup();
  check_no_pgflip_objects(db.name());
}

TEST_CASE("unfence restores an operator's own ALTER SYSTEM value; cleanup keeps a live fence") {
  UnfenceAtExit unfence_guard;
  PgConnection admin = blue();
  admin.run("ALTER SYSTEM SET default_transaction_read_only = off", "test");
  admin.run("SELECT pg_reload_conf()", "test");
  Manager m(settings_for({"postgres"}));

  FenceOptions keep_sessions;
  keep_sessions.terminate_backends = false;
  const FenceResult f = m.fence(keep_sessions);
  CHECK(f.action == FenceAction::kFenced);
  REQUIRE(f.previous_setting.has_value());
  CHECK(*f.previous_setting == "off");
  CHECK(f.terminated.empty());

  // While fenced, cleanup must not delete the record unfence needs.
  const CleanupReport c = m.cleanup();
  CHECK(std::any_of(c.actions.begin(), c.actions.end(), [](const CleanupAction& a) {
    return a.object == "table pgflip.fence" && a.action.starts_with("kept");
  }));
  CHECK(m.fence_state().recorded);

  CHECK(m.unfence().action == FenceAction::kUnfenced);
  CHECK(admin
            .exec("SELECT setting FROM pg_file_settings WHERE name = "
                  "'default_transaction_read_only' AND sourcefile LIKE '%postgresql.auto.conf'",
                  "test")
            .text(0, 0) == "off");
  admin.run("ALTER SYSTEM RESET default_transaction_read_only", "test");
  admin.run("SELECT pg_reload_conf()", "test");
  (void)m.cleanup();
  CHECK(scalar(admin, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgflip'") == 0);
}

TEST_CASE("fence: no non-superuser path commits a write on blue; a superuser still can") {
  TestRole writer("fence_writer");
  TestRole opted_out("fence_optout");
  TestRole replicator("fence_cdc");
  TestDatabase db("repl_fence_bypass");
  UnfenceAtExit unfence_guard;
  {
    PgConnection admin = blue(db.name());
    admin.run("CREATE TABLE t (who text)", "test");
    admin.run("GRANT SELECT, INSERT ON t TO PUBLIC", "test");
    admin.run(
        "ALTER ROLE " + quote_ident(opted_out.name()) + " SET default_transaction_read_only = off",
        "test");
    admin.run("ALTER ROLE " + quote_ident(replicator.name()) + " REPLICATION", "test");
    // The owner of a database may lift its connection limit, from any database it reaches.
    admin.run(
        "ALTER DATABASE " + quote_ident(db.name()) + " OWNER TO " + quote_ident(writer.name()),
        "test");
  }
  const ServerLogin w = as_user(cluster().blue, writer.name());
  const ServerLogin o = as_user(cluster().blue, opted_out.name());
  const ServerLogin r = as_user(cluster().blue, replicator.name());
  const std::string before = limits_and_auto_conf();

  // Sessions open before the fence: one claims pgflip's application_name, one is a logical
  // walsender (it runs SQL too), one is inside a transaction; all opted out of read-only.
  AppConnection claimer(w, db.name(), "pgflip-replication-x");
  AppConnection walsender(r, db.name(), "cdc", "database");
  AppConnection in_flight(w, db.name());
  for (AppConnection* c : {&claimer, &walsender, &in_flight}) {
    REQUIRE(c->run("SET default_transaction_read_only = off") == "");
  }
  REQUIRE(claimer.run("INSERT INTO t VALUES ('before')") == "");
  REQUIRE(in_flight.run("BEGIN") == "");
  REQUIRE(in_flight.run("INSERT INTO t VALUES ('in flight')") == "");

  Manager m(settings_for({db.name()}));
  const FenceResult f = m.fence(labelled("bypass"));
  INFO(f.to_table());
  CHECK(was_terminated(f, claimer.backend_pid()));
  CHECK(was_terminated(f, walsender.backend_pid()));
  CHECK(was_terminated(f, in_flight.backend_pid()));
  CHECK(std::any_of(f.databases.begin(), f.databases.end(), [&](const FencedDatabase& d) {
    return d.database == db.name() && d.previous_limit == -1;
  }));
  CHECK(f.logins_disabled == std::vector<std::string>{replicator.name()});

  // Every path ends in a clear error: terminated (57P01, or libpq saw the connection close),
  // login refused (53300), or read-only (25006).
  const auto gone = [](const std::string& code) { return code == "57P01" || code == "connection"; };
  CHECK(gone(claimer.run("INSERT INTO t VALUES ('claimer')")));
  CHECK(gone(walsender.run("INSERT INTO t VALUES ('walsender')")));
  CHECK(gone(in_flight.run("COMMIT")));
  const std::string insert = "INSERT INTO t VALUES ('after')";
  CHECK(try_write(w, db.name(), {"SET default_transaction_read_only = off", insert}) == "53300");
  CHECK(try_write(w, db.name(), {"BEGIN READ WRITE", insert, "COMMIT"}) == "53300");
  CHECK(try_write(w, db.name(), {"BEGIN", "SET transaction_read_only = off", insert, "COMMIT"}) ==
        "53300");
  CHECK(try_write(o, db.name(), {insert}) == "53300");  // ALTER ROLE ... SET ... = off
  // No stepping stone: the owner reaches no other database to lift its limit from.
  for (const std::string other : {"postgres", "template1"}) {
    CHECK(login_refusal(w, other).find(kTooMany) != std::string::npos);
  }
  // Connection limits do not apply to walsenders, and a logical one runs SQL: its REPLICATION
  // role is NOLOGIN while fenced.
  CHECK(try_write(r, db.name(), {"SET default_transaction_read_only = off", insert}, "database") ==
        "28000");

  // A superuser is not fenced: read-only by default (25006), but it may opt out.
  CHECK(try_write(cluster().blue, db.name(), {insert}) == "25006");
  PgConnection admin = blue(db.name());
  CHECK(scalar(admin, "SELECT count(*) FROM t") == 1);  // 'before' only
  CHECK(try_write(cluster().blue, db.name(),
                  {"SET default_transaction_read_only = off", "INSERT INTO t VALUES ('su')"}) ==
        "");

  // Unfenced: limits and postgresql.auto.conf exactly as before; the writer writes again.
  CHECK(m.unfence().action == FenceAction::kUnfenced);
  CHECK(limits_and_auto_conf() == before);
  CHECK(try_write(w, db.name(), {insert}) == "");
  CHECK(try_write(r, db.name(), {"SELECT 1"}, "database") == "");
}

TEST_CASE("fence: unfence restores non-default limits and the setting exactly, after a cut") {
  TestDatabase db("repl_fence_limits");
  UnfenceAtExit unfence_guard;
  {
    PgConnection admin = blue();
    admin.run("ALTER DATABASE " + quote_ident(db.name()) + " CONNECTION LIMIT 7", "test");
    admin.run("ALTER SYSTEM SET default_transaction_read_only = off", "test");
    admin.run("SELECT pg_reload_conf()", "test");
  }
  const std::string before = limits_and_auto_conf();
  Manager m(settings_for({db.name()}));
  const FenceResult f = m.fence(labelled("limits"));
  INFO(f.to_table());
  CHECK(blue_scalar("postgres",
                    "SELECT count(*) FROM pg_database WHERE datallowconn AND datconnlimit <> 0") ==
        0);
  const auto limit_of = [&](const std::vector<FencedDatabase>& dbs) {
    for (const auto& d : dbs) {
      if (d.database == db.name()) return d.previous_limit;
    }
    return -2;
  };
  CHECK(limit_of(f.databases) == 7);
  CHECK(m.fence_state().default_transaction_read_only == "on");

  // A second fence keeps the recorded limit (7), not the current one (0).
  const FenceResult again = m.fence(labelled("again"));
  CHECK(again.action == FenceAction::kAlreadyFenced);
  CHECK(limit_of(again.databases) == 7);
  CHECK(limit_of(m.fence_state().databases) == 7);

  // An unfence killed halfway (one limit already back, the record still there) is finished by
  // the next one, from a pgflip that knows nothing else.
  blue().run("ALTER DATABASE " + quote_ident(db.name()) + " CONNECTION LIMIT 7", "test");
  CHECK(Manager(settings_for({db.name()})).unfence().action == FenceAction::kUnfenced);
  CHECK(limits_and_auto_conf() == before);
  CHECK(m.unfence().action == FenceAction::kNotFenced);
  CHECK(limits_and_auto_conf() == before);

  PgConnection admin = blue();
  admin.run("ALTER SYSTEM RESET default_transaction_read_only", "test");
  admin.run("SELECT pg_reload_conf()", "test");
}

TEST_CASE("fence: an apply worker on the fenced server still applies, even a restarted one") {
  TestDatabase db("repl_fence_apply", /*also_on_green=*/true);
  UnfenceAtExit unfence_guard;
  // Blue subscribes to green here, as it will for a switchback.
  const std::string sub = unique_name("fence_back");
  struct DropSubscription {
    std::string database, name;
    ~DropSubscription() {
      try {
        blue(database).run("DROP SUBSCRIPTION IF EXISTS " + quote_ident(name), "test");
      } catch (...) {
      }
    }
  } drop_subscription{db.name(), sub};
  PgConnection g = green(db.name());
  g.run("CREATE TABLE t (id int PRIMARY KEY)", "test");
  g.run("CREATE PUBLICATION " + quote_ident(sub) + " FOR TABLE t", "test");
  blue(db.name()).run("CREATE TABLE t (id int PRIMARY KEY)", "test");
  blue(db.name()).run(
      "CREATE SUBSCRIPTION " + quote_ident(sub) + " CONNECTION " +
          quote_literal(conninfo_string({{"host", cluster().green.host},
                                         {"port", std::to_string(cluster().green.port)},
                                         {"user", cluster().green.user},
                                         {"dbname", db.name()}})) +
          " PUBLICATION " + quote_ident(sub) + " WITH (copy_data = false)",
      "test");
  const auto apply_pid = [&] {
    return blue_scalar(db.name(),
                       "SELECT coalesce(max(pid), 0) FROM pg_stat_subscription WHERE subname = '" +
                           sub + "' AND relid IS NULL");
  };
  const auto applied = [&](std::int64_t rows) {
    return detail::poll_until(Clock::now() + 60s, 20ms, [&] {
      return blue_scalar(db.name(), "SELECT count(*) FROM t") == rows;
    });
  };
  g.run("INSERT INTO t VALUES (1)", "test");
  REQUIRE(applied(1));
  const std::int64_t worker = apply_pid();
  REQUIRE(worker != 0);

  Manager m(settings_for({db.name()}));
  const FenceResult f = m.fence(labelled("apply"));
  INFO(f.to_table());
  CHECK_FALSE(was_terminated(f, static_cast<int>(worker)));
  CHECK(try_write(cluster().blue, db.name(), {"INSERT INTO t VALUES (100)"}) == "25006");
  g.run("INSERT INTO t VALUES (2)", "test");
  CHECK(applied(2));
  CHECK(apply_pid() == worker);

  // A new apply worker logs in despite CONNECTION LIMIT 0 (its owner is a superuser).
  blue(db.name()).run("ALTER SUBSCRIPTION " + quote_ident(sub) + " DISABLE", "test");
  REQUIRE(detail::poll_until(Clock::now() + 30s, 20ms, [&] { return apply_pid() == 0; }));
  blue(db.name()).run("ALTER SUBSCRIPTION " + quote_ident(sub) + " ENABLE", "test");
  g.run("INSERT INTO t VALUES (3)", "test");
  CHECK(applied(3));
  CHECK(apply_pid() != worker);
  CHECK(m.unfence().action == FenceAction::kUnfenced);
}

}  // namespace pgflip::replication::test
