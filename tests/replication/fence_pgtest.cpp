// Live tests of the fence: read-only blue for other clients, idempotent, undone after a restart.
#include <doctest/doctest.h>

#include <algorithm>

#include "pgtest_support.hpp"

namespace pgflip::replication::test {
namespace {

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

}  // namespace pgflip::replication::test
