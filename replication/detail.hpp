// Internal helpers of the replication manager: clocks and polling with a deadline.
#pragma once

#include <chrono>
#include <thread>

namespace pgflip::replication::detail {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Evaluates `condition` now and then every `interval` until it returns true (→ true) or
/// `deadline` passes (→ false). The wait between polls is the interval, never past the deadline.
template <class Condition>
[[nodiscard]] bool poll_until(Clock::time_point deadline, std::chrono::milliseconds interval,
                              Condition&& condition) {
  for (;;) {
    if (condition()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline - now));
  }
}

}  // namespace pgflip::replication::detail
