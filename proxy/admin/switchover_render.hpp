// The switchover report as the admin socket, pgflipctl and the console show it, and the
// history of switchovers as a table. (The report's JSON form is the history's, in
// proxy/control/switchover_history.hpp.)
#pragma once

#include <boost/json.hpp>

#include <string>
#include <variant>
#include <vector>

#include "proxy/admin/admin_table.hpp"
#include "proxy/control/switchover.hpp"
#include "proxy/control/switchover_history.hpp"

namespace pgflip::proxy {

/// The report as text (what pgflipctl prints).
[[nodiscard]] std::string report_text(const SwitchoverReport& report);
/// One finished step as a line: "park           18.2 ms  16 parked, ...".
[[nodiscard]] std::string step_line(const StepRecord& step);

/// The history as rows, oldest first: id, started (UTC), outcome (outcome_summary), total_ms,
/// window_ms (clients held), sessions, moved, released, ended, reason. `switchover history`
/// prints it, `SHOW SWITCHOVERS` sends it.
[[nodiscard]] AdminTable history_table(const std::vector<SwitchoverReport>& reports);

/// Switchover options from [switchover], overridden by a request's args (timeout_s,
/// drain_timeout_s, on_straggler, dry_run). Returns the reason when an arg is invalid.
[[nodiscard]] std::variant<SwitchoverOptions, std::string> switchover_options(
    const config::Config& config, const boost::json::object& args);

}  // namespace pgflip::proxy
