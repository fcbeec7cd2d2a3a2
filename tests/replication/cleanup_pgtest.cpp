// Live tests of cleanup: after init is SIGKILLed mid-copy, and after a slot leaked by a crash.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest_support.hpp"

namespace pgflip::replication::test {
namespace {

using namespace std::chrono_literals;

std::uint32_t blue_oid(const std::string& database) {
  PgConnection b = blue();
  return static_cast<std::uint32_t>(
      b.exec("SELECT oid::int8 FROM pg_database WHERE datname = $1", {database}, "test")
          .int64(0, 0));
}

}  // namespace

TEST_CASE("cleanup after init was killed halfway through the copy leaves nothing behind") {
  TestDatabase db("repl_crash");
  (void)pgbench({"-i", "-s", "5", "-q"}, db.name());

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child runs init and signals once the copy is under way, then waits to be killed.
    ::close(fds[0]);
    try {
      Manager m(settings_for({db.name()}));
      InitOptions options;
      options.copy_schema = true;
      options.progress_interval = 10ms;
      options.on_progress = [&](const InitProgress& p) {
        if (p.tables_done < p.tables_total) {
          const char c = 'x';
          (void)!::write(fds[1], &c, 1);
          ::pause();
        }
      };
      (void)m.init(options);
    } catch (...) {
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  char c = 0;
  const ssize_t got = ::read(fds[0], &c, 1);
  ::close(fds[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(got == 1);  // killed while tables were still copying

  const std::string sub =
      ObjectNames::for_prefix("pgflip").subscription(db.name(), blue_oid(db.name()));
  {
    PgConnection b = blue();
    PgConnection g = green();
    const auto slots =
        b.exec("SELECT count(*) FROM pg_replication_slots WHERE database = $1", {db.name()}, "test")
            .int64(0, 0);
    CHECK(slots >= 1);
    CHECK(g.exec("SELECT count(*) FROM pg_subscription WHERE subname = $1", {sub}, "test")
              .int64(0, 0) == 1);
    MESSAGE("left behind by the killed init: " << slots << " slots on blue");
  }

  Manager m(settings_for({db.name()}));
  const CleanupReport r = m.cleanup();
  MESSAGE(r.to_table());
  check_no_pgflip_objects(db.name());
  CHECK(m.cleanup().dropped() == 0);
}

TEST_CASE("init and cleanup recover from a slot leaked by a crash inside CREATE SUBSCRIPTION") {
  TestDatabase db("repl_leak");
  blue(db.name()).run(
      "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)", "test");
  Manager m(settings_for({db.name()}));
  const std::string slot = m.names().subscription(db.name(), blue_oid(db.name()));
  auto leak = [&] {
    PgConnection b = blue(db.name());
    b.run("CREATE PUBLICATION pgflip_pub FOR ALL TABLES", "test");
    b.run("SELECT pg_create_logical_replication_slot('" + slot + "', 'pgoutput')", "test");
  };

  // init finds the orphaned slot, replaces it and completes.
  leak();
  InitOptions options;
  options.copy_schema = true;
  const InitReport report = m.init(options);
  CHECK(report.synced);
  {
    PgConnection g = green(db.name());
    CHECK(scalar(g, "SELECT count(*) FROM t") == 10);
  }
  (void)m.cleanup();
  check_no_pgflip_objects(db.name());

  // cleanup alone removes the same leftovers.
  leak();
  const CleanupReport r = m.cleanup();
  MESSAGE(r.to_table());
  CHECK(r.dropped() == 2);  // the publication and the slot
  check_no_pgflip_objects(db.name());
}

}  // namespace pgflip::replication::test
