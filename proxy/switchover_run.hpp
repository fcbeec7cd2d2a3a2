// What the switchover orchestrator and the sessions taking part in it share.
//
// The orchestrator runs on an admin thread and blocks; each session runs its part as a
// coroutine on its own worker. They meet here: sessions report each phase they reach,
// the orchestrator waits for reports with deadlines and sends decisions back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace pgflip::proxy {

/// What the orchestrator tells a session to do next.
enum class SwitchoverDecision {
  kPark,       // hold the client at its next transaction boundary, then capture state
  kCommit,     // the decision is durable: replay state on green, swap, release
  kAbort,      // release the client to blue, drop the green connection
  kTerminate,  // end the session (straggler under on_straggler = cancel, or unmovable)
};

/// How far a session got.
enum class ParticipantPhase {
  kJoined,
  kPrewarmed,  // green connection open and authenticated
  kParked,     // idle, client held, state captured on blue
  kMoved,      // serving from green
  kReleased,   // released back to blue after an abort
  kEnded,      // terminated or gone
  kFailed,     // could not do its part (see detail)
};

struct ParticipantState {
  ParticipantPhase phase = ParticipantPhase::kJoined;
  std::string detail;         // why it failed or ended
  std::string unmovable;      // non-empty: why the session cannot move (temp tables, ...)
  std::int32_t blue_pid = 0;  // its blue backend, kept alive by the fence
  double held_ms = 0;         // how long a client request waited while parked
  bool had_held_request = false;
  std::chrono::steady_clock::time_point parked_at{};
};

/// Thread-safe meeting point of one switchover.
class SwitchoverRun {
 public:
  SwitchoverRun(std::string id, config::Endpoint green, std::chrono::milliseconds connect_timeout)
      : id_(std::move(id)), green_(std::move(green)), connect_timeout_(connect_timeout) {}

  [[nodiscard]] const std::string& id() const { return id_; }
  [[nodiscard]] const config::Endpoint& green() const { return green_; }
  [[nodiscard]] std::chrono::milliseconds connect_timeout() const { return connect_timeout_; }

  void join(std::uint64_t session) {
    std::lock_guard lock(mutex_);
    participants_.try_emplace(session);
  }

  /// Called by a session (any thread) when it reaches a phase.
  void report(std::uint64_t session, ParticipantPhase phase, std::string detail = {}) {
    std::lock_guard lock(mutex_);
    auto& state = participants_[session];
    state.phase = phase;
    if (!detail.empty()) state.detail = std::move(detail);
    if (phase == ParticipantPhase::kParked) state.parked_at = std::chrono::steady_clock::now();
    changed_.notify_all();
  }

  template <class Update>
  void update(std::uint64_t session, Update&& update) {
    std::lock_guard lock(mutex_);
    update(participants_[session]);
    changed_.notify_all();
  }

  /// Waits until no participant is in a phase before `phase` (failed/ended count as done),
  /// or the deadline passes. Returns the sessions still short of it.
  [[nodiscard]] std::vector<std::uint64_t> wait_for(
      ParticipantPhase phase, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    auto behind = [&] {
      std::vector<std::uint64_t> late;
      for (const auto& [id, state] : participants_) {
        if (state.phase < phase) late.push_back(id);
      }
      return late;
    };
    changed_.wait_until(lock, deadline, [&] { return behind().empty(); });
    return behind();
  }

  [[nodiscard]] std::map<std::uint64_t, ParticipantState> snapshot() const {
    std::lock_guard lock(mutex_);
    return participants_;
  }

 private:
  const std::string id_;
  const config::Endpoint green_;
  const std::chrono::milliseconds connect_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::uint64_t, ParticipantState> participants_;
};

}  // namespace pgflip::proxy
