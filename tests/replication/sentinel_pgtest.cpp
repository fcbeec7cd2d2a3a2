// Live tests of the sentinel wait, and of the switchover building blocks run in order.
#include <doctest/doctest.h>

#include <algorithm>

#include "pgtest_support.hpp"
#include "replication/detail.hpp"

namespace pgflip::replication::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string subscription_of(const Manager& m, const std::string& database) {
  PgConnection b = blue();
  const auto oid =
      b.exec("SELECT oid::int8 FROM pg_database WHERE datname = $1", {database}, "test")
          .int64(0, 0);
  return m.names().subscription(database, static_cast<std::uint32_t>(oid));
}

}  // namespace

TEST_CASE("sentinel wait returns only after green applied it, and everything before it") {
  TestDatabase db("repl_sentinel");
  blue(db.name()).run("CREATE TABLE t (id int PRIMARY KEY, v text)", "test");
  Manager m(settings_for({db.name()}));
  InitOptions options;
  options.copy_schema = true;
  REQUIRE(m.init(options).synced);
  const std::string sub = subscription_of(m, db.name());

  // Stop applying on green.
  PgConnection g = green(db.name());
  g.run("ALTER SUBSCRIPTION " + quote_ident(sub) + " DISABLE", "test");
  REQUIRE(detail::poll_until(Clock::now() + 30s, 20ms, [&] {
    return scalar(g, "SELECT count(*) FROM pg_stat_subscription WHERE subname = '" + sub +
                         "' AND pid IS NOT NULL") == 0;
  }));
  blue(db.name()).run("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g", "test");

  // The sentinel cannot reach green: the wait must end in a timeout, not return.
  const auto t0 = Clock::now();
  try {
    (void)m.write_sentinel_and_wait("blocked", 1000ms);
    FAIL("sentinel wait returned while green was not applying");
  } catch (const ReplicationError& e) {
    CHECK(e.kind() == ErrorKind::kTimeout);
    CHECK(e.step() == "sentinel");
  }
  CHECK(detail::seconds_since(t0) >= 1.0);
  CHECK(scalar(g, "SELECT count(*) FROM t") == 0);

  g.run("ALTER SUBSCRIPTION " + quote_ident(sub) + " ENABLE", "test");
  const SentinelResult r = m.write_sentinel_and_wait("released", 60s);
  MESSAGE(r.to_table());
  REQUIRE(r.databases.size() == 1);
  // When it returns, green holds the sentinel and every row committed before it.
  CHECK(scalar(g, "SELECT count(*) FROM t") == 1000);
  CHECK(g.exec("SELECT label FROM pgflip.heartbeat WHERE id = $1::int8",
               {std::to_string(r.databases[0].id)}, "test")
            .text(0, 0) == "released");
  CHECK(r.databases[0].wait_seconds > 0);
  CHECK(r.to_json().at("databases").at(0).at("database").as_string() == db.name());
}

TEST_CASE("switchover steps in order over one watch: fence keeps the walsender and the watch") {
  TestDatabase db("repl_steps");
  struct UnfenceAtExit {
    ~UnfenceAtExit() {
      try {
        (void)Manager(settings_for({"postgres"})).unfence();
      } catch (...) {
      }
    }
  } unfence_guard;
  blue(db.name()).run("CREATE TABLE orders (id serial PRIMARY KEY, v int)", "test");
  Manager m(settings_for({db.name()}));
  InitOptions options;
  options.copy_schema = true;
  REQUIRE(m.init(options).synced);
  const std::string sub = subscription_of(m, db.name());
  PgConnection b = blue();
  std::int64_t walsender = 0;
  REQUIRE(detail::poll_until(Clock::now() + 30s, 20ms, [&] {
    walsender = b.exec(
                     "SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE "
                     "slot_name = $1",
                     {sub}, "test")
                    .int64(0, 0);
    return walsender != 0;
  }));

  // As a switchover: the watch's connections are opened before clients are parked and serve
  // the fence, the drain and the sequence copy.
  SentinelWatch watch = m.watch_sentinels();
  AppConnection app(cluster().blue, db.name());
  REQUIRE(app.run("INSERT INTO orders (v) SELECT g FROM generate_series(1, 50) g") == "");
  // The fence keeps pgflip's connections by pid (the watch's on its own, this test's `b`
  // because it says so), never by application_name.
  FenceOptions fence = labelled("steps");
  fence.keep_pids.push_back(b.backend_pid());
  const FenceResult fenced = m.fence(fence, watch);
  CHECK(std::any_of(fenced.terminated.begin(), fenced.terminated.end(),
                    [&](const TerminatedBackend& t) { return t.pid == app.backend_pid(); }));
  CHECK(std::none_of(fenced.terminated.begin(), fenced.terminated.end(),
                     [&](const TerminatedBackend& t) { return t.pid == walsender; }));
  CHECK(b.exec("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", {sub}, "test")
            .int64(0, 0) == walsender);

  // The watch's own connections survived the fence and still write on the fenced blue.
  watch.write("steps");
  REQUIRE(watch.wait_until(Clock::now() + 30s, 5ms));
  const SentinelResult drained = watch.result();
  const SequenceCopyResult seqs = m.copy_sequences(watch);
  MESSAGE("drain " << drained.seconds * 1000 << " ms, sequences " << seqs.seconds * 1000
                   << " ms (read " << seqs.read_seconds * 1000 << ", write "
                   << seqs.write_seconds * 1000 << ")");
  REQUIRE(seqs.count() == 1);
  CHECK(seqs.sequences[0].name == "orders_id_seq");
  CHECK(seqs.sequences[0].last_value == 50);
  PgConnection g = green(db.name());
  CHECK(scalar(g, "SELECT count(*) FROM orders") == 50);
  CHECK(scalar(g, "SELECT nextval('orders_id_seq')") == 51);
  // Without a watch, the copy opens its own connections and finds the same value.
  REQUIRE(blue(db.name()).exec("SELECT setval('orders_id_seq', 70)", "test").rows() == 1);
  CHECK(m.copy_sequences().sequences.at(0).last_value == 70);
  CHECK(scalar(g, "SELECT nextval('orders_id_seq')") == 71);
  CHECK(m.unfence().action == FenceAction::kUnfenced);
}

}  // namespace pgflip::replication::test
