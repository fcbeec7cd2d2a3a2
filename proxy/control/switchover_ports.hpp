// What the switchover state machine needs from the world: the servers (replication steps)
// and the sessions. The daemon wires them to libpq and to the live sessions
// (switchover_wiring.cpp); the unit tests wire them to fakes.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/session/switchover_run.hpp"

namespace pgflip::proxy {

/// The replication steps, against blue and green. Calls block and throw std::exception
/// (with a message an operator can act on) when a server fails. Called from one thread.
class SwitchoverServers {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~SwitchoverServers() = default;

  /// Why a switchover cannot start now (lag, sync, DDL, precheck FAIL, an old transaction
  /// on blue); empty when nothing stops it. Changes nothing.
  [[nodiscard]] virtual std::vector<std::string> guardrail_problems() = 0;
  /// Opens the connections that catchup, fence, drain and sequences use, so that no login
  /// happens while clients are parked.
  virtual void open() = 0;
  /// Writes a sentinel labelled `label` on blue (committed when this returns).
  virtual void write_sentinel(std::string_view label) = 0;
  /// Whether green shows the last sentinel by `until` (polls).
  [[nodiscard]] virtual bool sentinel_applied(Clock::time_point until) = 0;
  /// Milliseconds from the last sentinel's commit on blue to green showing it.
  [[nodiscard]] virtual double sentinel_ms() const = 0;
  /// The databases that do not show the last sentinel yet.
  [[nodiscard]] virtual std::string sentinel_missing() const = 0;
  /// Fences blue, keeping `keep_pids` (the parked sessions' backends). Returns how many other
  /// backends were terminated.
  [[nodiscard]] virtual std::size_t fence(const std::vector<int>& keep_pids,
                                          const std::string& label,
                                          std::chrono::milliseconds timeout) = 0;
  virtual void unfence() = 0;
  /// Sets every sequence of blue on green; returns how many.
  [[nodiscard]] virtual std::size_t copy_sequences() = 0;
  /// Drops the forward replication (subscription, slot, publication).
  virtual void cleanup() = 0;
};

/// The live sessions and the login gate. Thread-safe.
class SwitchoverFleet {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~SwitchoverFleet() = default;

  /// Closes (or opens) the gate that holds new logins while a switchover has clients parked.
  virtual void hold_logins(bool hold) = 0;
  /// Returns once no login is between the gate and the relay, or at `deadline`.
  virtual void wait_for_logins(Clock::time_point deadline) = 0;
  /// The sessions that take part (admin console sessions have nothing to move).
  [[nodiscard]] virtual std::vector<std::shared_ptr<SwitchoverParticipant>> participants() = 0;
};

}  // namespace pgflip::proxy
