// Live tests of precheck: every case it claims to catch, with the right level and fix.
#include <doctest/doctest.h>

#include <algorithm>

#include "pgtest_support.hpp"
#include "replication/detail.hpp"

namespace pgflip::replication::test {
namespace {

using namespace std::chrono_literals;

const PrecheckRow* row(const PrecheckReport& r, std::string_view check, std::string_view object) {
  const auto it = std::find_if(r.rows.begin(), r.rows.end(), [&](const PrecheckRow& x) {
    return x.check == check && x.object == object;
  });
  return it == r.rows.end() ? nullptr : &*it;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("precheck catches every case it claims, each FAIL with its fix") {
  TestRole missing_role("repl_missing");
  TestDatabase db("repl_pre", /*also_on_green=*/true);
  const std::string slot = unique_name("cdc_slot");
  {
    PgConnection b = blue(db.name());
    b.run(
        "CREATE TABLE nopk_updated (a int, b text);"
        "INSERT INTO nopk_updated VALUES (1, 'x');"
        "CREATE TABLE nopk_insert_only (a int NOT NULL, b text);"
        "CREATE UNIQUE INDEX nopk_insert_only_a ON nopk_insert_only (a);"
        "INSERT INTO nopk_insert_only VALUES (1, 'x');"
        "CREATE TABLE full_identity (a int);"
        "ALTER TABLE full_identity REPLICA IDENTITY FULL;"
        "CREATE TABLE withpk (id int PRIMARY KEY, c1 int, c2 text);"
        "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);"
        "CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n FROM withpk;"
        "CREATE TABLE gen (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED);"
        "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
        "  $$BEGIN RETURN NEW; END$$;"
        "CREATE TRIGGER stamp BEFORE INSERT ON withpk FOR EACH ROW EXECUTE FUNCTION stamp();"
        "ALTER TABLE withpk ENABLE ALWAYS TRIGGER stamp;"
        "CREATE EXTENSION citext;"     // available on green, not created there
        "CREATE EXTENSION adminpack;"  // not shipped with green's PostgreSQL 17
        "SELECT lo_create(0);",
        "test");
    // An update in its own statement; stats reach pg_stat_user_tables asynchronously.
    b.run("UPDATE nopk_updated SET b = 'y'", "test");
    b.run("SELECT pg_stat_force_next_flush()", "test");
    b.run("SELECT pg_create_logical_replication_slot('" + slot + "', 'pgoutput')", "test");
    REQUIRE(detail::poll_until(std::chrono::steady_clock::now() + 30s, 50ms, [&] {
      return scalar(b,
                    "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables WHERE "
                    "relname = 'nopk_updated'") > 0;
    }));
    PgConnection g = green(db.name());
    g.run("CREATE TABLE withpk (id int PRIMARY KEY, c1 int)", "test");  // c2 missing
    g.run("CREATE TABLE full_identity (a int); INSERT INTO full_identity VALUES (1)",
          "test");  // rows the initial copy would duplicate
  }
  struct SlotGuard {
    std::string name;
    ~SlotGuard() {
      try {
        blue().run("SELECT pg_drop_replication_slot('" + name + "')", "test");
      } catch (...) {
      }
    }
  } slot_guard{slot};

  Manager m(settings_for({db.name()}));
  const PrecheckReport r = m.precheck();
  INFO(r.to_table());
  CHECK(r.has_failures());

  const PrecheckRow* x = row(r, "replica_identity", "public.nopk_updated");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);
  CHECK(x->fix ==
        "ALTER TABLE public.nopk_updated REPLICA IDENTITY FULL;  -- or add a primary key");

  x = row(r, "replica_identity", "public.nopk_insert_only");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kWarn);
  CHECK(x->fix ==
        "ALTER TABLE public.nopk_insert_only REPLICA IDENTITY USING INDEX nopk_insert_only_a;");
  CHECK(row(r, "replica_identity", "public.full_identity") == nullptr);
  CHECK(row(r, "replica_identity", "public.withpk") == nullptr);

  x = row(r, "large_objects", "1 large objects");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);
  CHECK(contains(x->fix, "lo_unlink"));

  x = row(r, "unlogged_tables", "public.scratch");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kWarn);
  CHECK(contains(x->detail, "not replicated"));

  x = row(r, "materialized_views", "public.totals");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kWarn);
  CHECK(x->fix == "on green before the switchover: REFRESH MATERIALIZED VIEW public.totals;");

  x = row(r, "generated_columns", "public.gen.b");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kWarn);

  x = row(r, "replica_triggers", "public.withpk trigger stamp (blue)");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kWarn);
  CHECK(contains(x->detail, "ALWAYS"));

  x = row(r, "columns", "public.withpk.\"c2\"");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);
  CHECK(x->fix == "ALTER TABLE public.withpk ADD COLUMN \"c2\" text;  -- on green");
  x = row(r, "columns", "public.gen");  // not on green at all, and no schema copy planned
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);

  x = row(r, "green_rows", "public.full_identity");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);
  CHECK(x->fix == "TRUNCATE public.full_identity;  -- on green, before init");
  CHECK(row(r, "green_rows", "public.withpk") == nullptr);  // empty on green

  x = row(r, "extensions", "extension citext");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);
  CHECK(contains(x->fix, "CREATE EXTENSION \"citext\";"));
  x = row(r, "extensions", "extension adminpack");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);
  CHECK(contains(x->detail, "not available on green"));

  x = row(r, "roles", "role " + missing_role.name());
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kFail);
  CHECK(contains(x->fix, "CREATE ROLE " + missing_role.name() + " WITH NOSUPERUSER"));

  x = row(r, "logical_slots", "slot " + slot);
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kWarn);
  CHECK(contains(x->detail, "pgoutput"));

  x = row(r, "wal_level", "blue");
  REQUIRE(x != nullptr);
  CHECK(x->level == CheckLevel::kPass);

  // With schema and role copy planned into an empty database, the same blue passes the
  // schema checks it would otherwise fail.
  {
    TestDatabase empty("repl_pre_empty");
    PgConnection b = blue(empty.name());
    b.run("CREATE TABLE t (id int PRIMARY KEY); CREATE EXTENSION citext;", "test");
    Manager planned(settings_for({empty.name()}));
    const PrecheckReport p =
        planned.precheck({.schema_copy_planned = true, .role_copy_planned = true});
    INFO(p.to_table());
    CHECK_FALSE(p.has_failures());
    CHECK(row(p, "columns", "public.t") == nullptr);
    CHECK(row(p, "roles", "role " + missing_role.name()) == nullptr);
  }

  // A precheck with FAIL rows stops init before it changes anything.
  try {
    (void)m.init();
    FAIL("init ran despite precheck failures");
  } catch (const ReplicationError& e) {
    CHECK(e.step() == "precheck");
    CHECK(contains(e.what(), "nopk_updated"));
  }
  PgConnection b = blue(db.name());
  CHECK(scalar(b, "SELECT count(*) FROM pg_publication") == 0);
}

}  // namespace pgflip::replication::test
