// The switchover's guardrails: what refuses a switchover, each reason naming what to fix.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "replication/reports.hpp"

namespace pgflip::proxy {

/// The oldest transaction open on blue (another backend's), as pg_stat_activity shows it.
struct OldestTransaction {
  double seconds = 0;
  int pid = 0;
  std::string user;
  std::string database;
  std::string application;
};

/// What the guardrails read from blue and green before anyone is parked.
struct GuardrailFindings {
  replication::StatusReport status;
  std::vector<replication::PrecheckRow> precheck;  // every row; only FAIL rows refuse
  std::optional<OldestTransaction> oldest_transaction;
};

/// Every reason the switchover must not start, each saying what is wrong and how to fix it
/// (the configuration key or the pgflipctl command); empty = within limits. Pure.
[[nodiscard]] std::vector<std::string> guardrail_problems(const GuardrailFindings& findings,
                                                          const config::SwitchoverSettings& limits);

/// The refusal when `side` ("blue" or "green") cannot be reached over its admin login.
[[nodiscard]] std::string unreachable_problem(std::string_view side,
                                              const config::Endpoint& endpoint,
                                              std::string_view error);

}  // namespace pgflip::proxy
