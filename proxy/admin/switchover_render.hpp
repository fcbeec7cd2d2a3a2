// The switchover report as the admin socket, pgflipctl and the console show it.
#pragma once

#include <boost/json.hpp>

#include <string>
#include <variant>

#include "proxy/control/switchover.hpp"

namespace pgflip::proxy {

/// The report as JSON (the admin reply's `result`).
[[nodiscard]] boost::json::object report_json(const SwitchoverReport& report);
/// The report as text (what pgflipctl prints).
[[nodiscard]] std::string report_text(const SwitchoverReport& report);
/// One finished step as JSON (a "step" event's data).
[[nodiscard]] boost::json::object step_json(const StepRecord& step);
/// One finished step as a line: "park           18.2 ms  16 parked, ...".
[[nodiscard]] std::string step_line(const StepRecord& step);

/// Switchover options from [switchover], overridden by a request's args (timeout_s,
/// drain_timeout_s, on_straggler, dry_run). Returns the reason when an arg is invalid.
[[nodiscard]] std::variant<SwitchoverOptions, std::string> switchover_options(
    const config::Config& config, const boost::json::object& args);

}  // namespace pgflip::proxy
