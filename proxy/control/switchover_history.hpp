// The switchover history: every switchover's report, one JSON line each, appended durably
// beside the state file; and the report's JSON form, which the history and the admin share.
#pragma once

#include <boost/json.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "proxy/control/switchover_report.hpp"

namespace pgflip::proxy {

/// How many reports the history keeps: appending one more drops the oldest.
inline constexpr std::size_t kHistoryKeep = 100;

/// The history file of a state file: beside it, its stem with ".history.jsonl"
/// ("/var/lib/pgflip/state.json" -> "/var/lib/pgflip/state.history.jsonl"), so that it
/// belongs to the same deployment as the state file.
[[nodiscard]] std::string history_path(const std::string& state_file);

/// The report as JSON: the admin reply's `result`, and one line of the history.
[[nodiscard]] boost::json::object report_json(const SwitchoverReport& report);
/// One finished step as JSON (a "step" event's data, an element of the report's "steps").
[[nodiscard]] boost::json::object step_json(const StepRecord& step);
/// The inverse of report_json. Throws std::runtime_error naming what is missing or wrong.
[[nodiscard]] SwitchoverReport parse_report(const boost::json::value& value);

/// How a run ended, in words: "committed", "refused at guardrails", "aborted at park by the
/// operator", "rolled back at drain", "dry run".
[[nodiscard]] std::string outcome_summary(const SwitchoverReport& report);

/// Appends the report as one line: opened with O_APPEND, written whole, fsync'd (and the
/// directory fsync'd when the file is new). A torn last line left by a crash is ended first,
/// so that it cannot swallow this one. When the file then holds more than `keep` reports, it
/// is rewritten with the newest `keep` (temp file, fsync, rename, fsync directory). Throws
/// std::runtime_error when the append fails; a failed trim is logged and left for the next.
void append_history(const std::string& path, const SwitchoverReport& report,
                    std::size_t keep = kHistoryKeep);

struct HistoryRead {
  std::vector<SwitchoverReport> reports;  // oldest first
  std::vector<std::string> warnings;      // one per line skipped
};

/// The newest `limit` reports (0: all), oldest first. No file is an empty history. A line
/// that is not a report (a torn last line after a crash mid-append, damage) is skipped with a
/// warning, never fatal. Throws std::runtime_error only when the file exists but cannot be
/// read.
[[nodiscard]] HistoryRead read_history(const std::string& path, std::size_t limit = 0);

}  // namespace pgflip::proxy
