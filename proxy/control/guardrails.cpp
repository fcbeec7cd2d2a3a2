// The switchover's guardrails: what refuses a switchover, each reason naming what to fix.
#include "proxy/control/guardrails.hpp"

#include <cstdio>

namespace pgflip::proxy {

namespace {

std::string decimals(double value, int places) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", places, value);
  return buffer;
}

/// What an operator does about replication in a state other than "streaming".
std::string state_fix(const std::string& state) {
  if (state == "absent") return "run 'pgflipctl replication init'";
  if (state == "incomplete") {
    return "run 'pgflipctl replication init' again (or 'pgflipctl replication cleanup' and "
           "init)";
  }
  if (state == "stopped") {
    return "green's subscription is disabled or its apply worker is not running: enable it "
           "(ALTER SUBSCRIPTION ... ENABLE on green) and see green's server log";
  }
  if (state == "copying") return "wait for the initial copy ('pgflipctl replication status')";
  if (state == "green_unreachable") return "start green, or fix green.host/green.port";
  return "see 'pgflipctl replication status'";
}

}  // namespace

std::vector<std::string> guardrail_problems(const GuardrailFindings& findings,
                                            const config::SwitchoverSettings& limits) {
  std::vector<std::string> problems;
  const auto& status = findings.status;
  if (status.databases.empty()) {
    problems.push_back("replication is not set up: run 'pgflipctl replication init'");
  }
  for (const auto& db : status.databases) {
    const std::string where = "[" + db.database + "] ";
    if (db.state != "streaming") {
      problems.push_back(where + "replication is " + db.state + ": " + state_fix(db.state));
    }
    if (db.tables_ready != db.tables_total) {
      problems.push_back(where + std::to_string(db.tables_total - db.tables_ready) +
                         " table(s) not synced: wait for the initial copy ('pgflipctl "
                         "replication status' lists them)");
    }
    if (db.lag_bytes && *db.lag_bytes > limits.max_lag_bytes) {
      problems.push_back(where + "green is " + std::to_string(*db.lag_bytes) +
                         " bytes of WAL behind blue, more than switchover.max_lag_bytes (" +
                         std::to_string(limits.max_lag_bytes) +
                         "): wait for green to catch up ('pgflipctl replication status' shows "
                         "the lag), or raise switchover.max_lag_bytes");
    }
    if (db.lag_seconds && *db.lag_seconds * 1000 > static_cast<double>(limits.max_lag.count())) {
      problems.push_back(
          where + "green applies blue's changes " + decimals(*db.lag_seconds * 1000, 0) +
          " ms late, more than switchover.max_lag_ms (" + std::to_string(limits.max_lag.count()) +
          "): wait for green to catch up ('pgflipctl replication status' shows "
          "the lag), or raise switchover.max_lag_ms");
    }
    if (db.ddl_count > 0) {
      problems.push_back(where + std::to_string(db.ddl_count) +
                         " DDL command(s) ran on blue since init (replication status lists "
                         "them): apply them to green, then run 'pgflipctl replication "
                         "ack-ddl'");
    }
  }
  for (const auto& row : findings.precheck) {
    if (row.level != replication::CheckLevel::kFail) continue;
    std::string problem = "[" + (row.database.empty() ? std::string("cluster") : row.database) +
                          "] precheck " + row.check + " FAIL" +
                          (row.object.empty() ? std::string() : " (" + row.object + ")") + ": " +
                          row.detail;
    problem += row.fix.empty() ? "; see 'pgflipctl replication precheck'" : "; fix: " + row.fix;
    problems.push_back(std::move(problem));
  }
  if (const auto& oldest = findings.oldest_transaction;
      oldest && oldest->seconds * 1000 > static_cast<double>(limits.max_transaction_age.count())) {
    problems.push_back(
        "a transaction on blue has been open for " + decimals(oldest->seconds, 1) +
        " s, longer than switchover.max_transaction_age_ms (" +
        std::to_string(limits.max_transaction_age.count()) + "): backend pid " +
        std::to_string(oldest->pid) + " (user " + oldest->user + ", database " + oldest->database +
        (oldest->application.empty() ? std::string() : ", application " + oldest->application) +
        "); let it commit or roll back (or end it: SELECT pg_terminate_backend(" +
        std::to_string(oldest->pid) + ") on blue), or raise switchover.max_transaction_age_ms");
  }
  return problems;
}

std::string unreachable_problem(std::string_view side, const config::Endpoint& endpoint,
                                std::string_view error) {
  const std::string name(side);
  return name + " (" + endpoint.address() + ") cannot be reached over " + name +
         ".admin_user's login: " + std::string(error) + "; start " + name + ", or fix " + name +
         ".host/" + name + ".port (and " + name + ".admin_user/admin_password)";
}

}  // namespace pgflip::proxy
