// Running an external tool (pg_dump, pg_dumpall, psql) with stdin, captured output and a deadline.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgflip::replication {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal (or by the deadline)
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
};

/// Runs argv[0] (a path) with the current environment plus `extra_env`, writes `input` to its
/// stdin, and collects stdout and stderr until it exits. At `deadline` the child is killed
/// (SIGKILL) and timed_out is set. Throws std::system_error when the process cannot start.
/// Safe to call from a multi-threaded program (posix_spawn, no fork).
[[nodiscard]] ProcessResult run_process(
    const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& extra_env, std::string_view input,
    std::chrono::steady_clock::time_point deadline);

}  // namespace pgflip::replication
