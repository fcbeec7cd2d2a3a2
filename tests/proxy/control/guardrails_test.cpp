// The guardrails' refusals: each names what is wrong and how to fix it.
#include "proxy/control/guardrails.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace pgflip::proxy;
namespace config = pgflip::config;
namespace replication = pgflip::replication;

namespace {

replication::DatabaseStatus streaming(const std::string& name) {
  replication::DatabaseStatus db;
  db.database = name;
  db.state = "streaming";
  db.tables_total = db.tables_ready = 3;
  db.lag_bytes = 100;
  db.lag_seconds = 0.01;
  return db;
}

GuardrailFindings healthy() {
  GuardrailFindings f;
  f.status.databases.push_back(streaming("shop"));
  f.precheck.push_back({"shop", "large_objects", replication::CheckLevel::kPass, "pg_largeobject",
                        "no large objects", ""});
  f.oldest_transaction = OldestTransaction{0.5, 4242, "app", "shop", "web"};
  return f;
}

/// The one problem `f` has under `limits`.
std::string only_problem(const GuardrailFindings& f, const config::SwitchoverSettings& limits) {
  const auto problems = guardrail_problems(f, limits);
  REQUIRE(problems.size() == 1);
  return problems.front();
}

}  // namespace

TEST_CASE("healthy replication within the limits passes") {
  CHECK(guardrail_problems(healthy(), config::SwitchoverSettings{}).empty());
}

TEST_CASE("each refusal says what is wrong and which key or command fixes it") {
  config::SwitchoverSettings limits;
  limits.max_lag_bytes = 1000;
  limits.max_lag = std::chrono::milliseconds(200);
  limits.max_transaction_age = std::chrono::milliseconds(1000);

  SUBCASE("lag in bytes") {
    auto f = healthy();
    f.status.databases[0].lag_bytes = 5000;
    const auto p = only_problem(f, limits);
    CHECK(p.starts_with("[shop] green is 5000 bytes of WAL behind blue"));
    CHECK(p.find("switchover.max_lag_bytes (1000)") != std::string::npos);
    CHECK(p.find("raise switchover.max_lag_bytes") != std::string::npos);
  }
  SUBCASE("lag in time") {
    auto f = healthy();
    f.status.databases[0].lag_seconds = 1.5;
    const auto p = only_problem(f, limits);
    CHECK(p.starts_with("[shop] green applies blue's changes 1500 ms late"));
    CHECK(p.find("switchover.max_lag_ms (200)") != std::string::npos);
    CHECK(p.find("raise switchover.max_lag_ms") != std::string::npos);
  }
  SUBCASE("a lag exactly at the limit passes") {
    auto f = healthy();
    f.status.databases[0].lag_bytes = 1000;
    f.status.databases[0].lag_seconds = 0.2;
    CHECK(guardrail_problems(f, limits).empty());
  }
  SUBCASE("DDL on blue") {
    auto f = healthy();
    f.status.databases[0].ddl_count = 2;
    const auto p = only_problem(f, limits);
    CHECK(p.starts_with("[shop] 2 DDL command(s) ran on blue since init"));
    CHECK(p.find("apply them to green, then run 'pgflipctl replication ack-ddl'") !=
          std::string::npos);
  }
  SUBCASE("an old transaction names its backend and the key") {
    auto f = healthy();
    f.oldest_transaction->seconds = 12.25;
    const auto p = only_problem(f, limits);
    CHECK(p.starts_with("a transaction on blue has been open for 12.2 s"));
    CHECK(p.find("switchover.max_transaction_age_ms (1000)") != std::string::npos);
    CHECK(p.find("backend pid 4242 (user app, database shop, application web)") !=
          std::string::npos);
    CHECK(p.find("SELECT pg_terminate_backend(4242)") != std::string::npos);
  }
  SUBCASE("a precheck FAIL carries the precheck's fix; WARN does not refuse") {
    auto f = healthy();
    f.precheck.push_back({"shop", "large_objects", replication::CheckLevel::kFail,
                          "1 large objects", "logical replication does not copy large objects",
                          "SELECT lo_unlink(oid) FROM pg_largeobject_metadata;"});
    f.precheck.push_back(
        {"shop", "replica_identity", replication::CheckLevel::kWarn, "t", "insert-only", "x"});
    f.precheck.push_back(
        {"", "wal_level", replication::CheckLevel::kFail, "blue", "wal_level = replica", ""});
    const auto problems = guardrail_problems(f, limits);
    REQUIRE(problems.size() == 2);
    CHECK(problems[0] ==
          "[shop] precheck large_objects FAIL (1 large objects): logical replication does not "
          "copy large objects; fix: SELECT lo_unlink(oid) FROM pg_largeobject_metadata;");
    CHECK(problems[1] ==
          "[cluster] precheck wal_level FAIL (blue): wal_level = replica; see 'pgflipctl "
          "replication precheck'");
  }
  SUBCASE("replication not set up, not streaming, not synced") {
    GuardrailFindings none;
    CHECK(only_problem(none, limits) ==
          "replication is not set up: run 'pgflipctl replication init'");
    auto f = healthy();
    f.status.databases[0].state = "stopped";
    CHECK(only_problem(f, limits).find("ALTER SUBSCRIPTION ... ENABLE") != std::string::npos);
    f.status.databases[0].state = "copying";
    f.status.databases[0].tables_ready = 1;
    const auto problems = guardrail_problems(f, limits);
    REQUIRE(problems.size() == 2);
    CHECK(problems[1].starts_with("[shop] 2 table(s) not synced: wait for the initial copy"));
  }
}

TEST_CASE("an unreachable server is named with its address and keys") {
  config::Endpoint green;
  green.host = "10.0.0.7";
  green.port = 5433;
  const auto p = unreachable_problem("green", green, "connection refused");
  CHECK(p ==
        "green (10.0.0.7:5433) cannot be reached over green.admin_user's login: connection "
        "refused; start green, or fix green.host/green.port (and "
        "green.admin_user/admin_password)");
}
