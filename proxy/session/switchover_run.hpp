// What the switchover orchestrator and the sessions taking part in it share.
//
// The orchestrator runs on an admin thread and blocks; each session runs its part as a
// coroutine on its own worker. They meet here: sessions report each phase they reach,
// the orchestrator waits for reports with deadlines and sends decisions back.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/base/async_semaphore.hpp"
#include "proxy/base/notifier.hpp"

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
  kHeld,       // at a transaction boundary, its client's next request held
  kParked,     // held, state captured on blue and restored on green (or unmovable)
  kMoved,      // serving from green
  kReleased,   // released back to blue after an abort
  kEnded,      // terminated or gone
  kFailed,     // could not do its part (see detail)
};
inline constexpr std::size_t kParticipantPhaseCount = 8;

struct ParticipantState {
  ParticipantPhase phase = ParticipantPhase::kJoined;
  std::string detail;         // why it failed or ended
  std::string unmovable;      // non-empty: why the session cannot move (temp tables, ...)
  std::int32_t blue_pid = 0;  // its blue backend, kept alive by the fence
  double held_ms = 0;         // how long a client request waited while parked
  bool had_held_request = false;
  std::chrono::steady_clock::time_point parked_at{};  // when it was held at its boundary
  std::chrono::steady_clock::time_point done_at{};  // when it moved, was released, ended or failed
};

class SwitchoverRun;

/// How many moved sessions close their old blue connection at once after the switchover: each
/// blue backend's exit costs milliseconds of CPU (~12 ms measured on a 2-core VM) that the moved
/// clients need.
inline constexpr std::size_t kRetiringAtOnce = 1;
/// How long a moved session waits for the flip to end before it closes its blue connection
/// anyway.
inline constexpr std::chrono::seconds kRetireWait{60};

/// A session as the switchover sees it (Session implements it; the switchover's unit tests
/// fake it). Both calls are thread-safe and return at once: the session does its part on its
/// own executor and reports each phase it reaches to the run.
class SwitchoverParticipant {
 public:
  virtual ~SwitchoverParticipant() = default;
  [[nodiscard]] virtual std::uint64_t id() const = 0;
  /// Open and authenticate a green connection now, then follow the orchestrator's decisions.
  virtual void join_switchover(std::shared_ptr<SwitchoverRun> run) = 0;
  /// The orchestrator's next decision; `reason` is what a terminated client is told.
  virtual void decide(SwitchoverDecision decision, std::string reason) = 0;
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
    if (participants_.try_emplace(session).second) ++in_phase_[index(ParticipantPhase::kJoined)];
  }

  /// Called by a session (any thread) when it reaches a phase.
  void report(std::uint64_t session, ParticipantPhase phase, std::string detail = {}) {
    std::lock_guard lock(mutex_);
    auto& state = entry(session);
    --in_phase_[index(state.phase)];
    ++in_phase_[index(phase)];
    state.phase = phase;
    if (!detail.empty()) state.detail = std::move(detail);
    if (phase >= ParticipantPhase::kHeld && phase <= ParticipantPhase::kParked &&
        state.parked_at == std::chrono::steady_clock::time_point{}) {
      state.parked_at = std::chrono::steady_clock::now();
    }
    if (phase > ParticipantPhase::kParked &&
        state.done_at == std::chrono::steady_clock::time_point{}) {
      state.done_at = std::chrono::steady_clock::now();
    }
    changed_.notify_all();
  }

  /// Changes a participant's record, never its phase (report() does that).
  template <class Update>
  void update(std::uint64_t session, Update&& update) {
    std::lock_guard lock(mutex_);
    auto& state = entry(session);
    const auto phase = state.phase;
    update(state);
    state.phase = phase;  // nothing wait_for() counts has changed: no one to wake
  }

  /// Waits until no participant is in a phase before `phase` (failed/ended count as done),
  /// the deadline passes, or interrupt() is called. Returns the sessions still short of it.
  /// Each report wakes it; it counts, so a thousand sessions cost a thousand counts, not a
  /// thousand walks of the thousand.
  [[nodiscard]] std::vector<std::uint64_t> wait_for(
      ParticipantPhase phase, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, deadline, [&] { return interrupted_ || behind(phase) == 0; });
    std::vector<std::uint64_t> late;
    for (const auto& [id, state] : participants_) {
      if (state.phase < phase) late.push_back(id);
    }
    return late;
  }

  /// Waits until at least `count` participants reached `phase` or a later one (failed and ended
  /// count), `deadline`, or interrupt(); returns whether they did.
  [[nodiscard]] bool wait_for_count(ParticipantPhase phase, std::size_t count,
                                    std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    auto reached = [&] { return participants_.size() - behind(phase) >= count; };
    changed_.wait_until(lock, deadline, [&] { return interrupted_ || reached(); });
    return reached();
  }

  /// Wakes every wait_for() now and makes later ones return at once (an operator's abort).
  void interrupt() {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
    changed_.notify_all();
  }
  /// Lets wait_for() wait again (the abort's own wait for the sessions' release).
  void clear_interrupt() {
    std::lock_guard lock(mutex_);
    interrupted_ = false;
  }

  /// The switchover has ended (after its cleanup): moved sessions may close their old blue
  /// connections now, kRetiringAtOnce at a time.
  void start_retiring() {
    {
      std::lock_guard lock(mutex_);
      retiring_ = true;
    }
    retire_signal_.notify();
  }

  /// A moved session's wait for start_retiring() (or `deadline`), then for its turn to close
  /// its blue connection. Returns whether it holds a turn (give it back with retired()).
  awaitable<bool> retire_turn(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const auto seen = retire_signal_.generation();
      {
        std::lock_guard lock(mutex_);
        if (retiring_) break;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      co_await retire_signal_.async_wait(seen, deadline);
    }
    co_return co_await retire_turns_.acquire(deadline);
  }
  void retired() { retire_turns_.release(); }

  [[nodiscard]] std::map<std::uint64_t, ParticipantState> snapshot() const {
    std::lock_guard lock(mutex_);
    return participants_;
  }

 private:
  static std::size_t index(ParticipantPhase phase) { return static_cast<std::size_t>(phase); }
  /// The participant's record; one that reports without join() joins now (mutex_ held).
  ParticipantState& entry(std::uint64_t session) {
    auto [it, added] = participants_.try_emplace(session);
    if (added) ++in_phase_[index(ParticipantPhase::kJoined)];
    return it->second;
  }
  /// How many participants are in a phase before `phase` (mutex_ held).
  [[nodiscard]] std::size_t behind(ParticipantPhase phase) const {
    std::size_t count = 0;
    for (std::size_t i = 0; i < index(phase); ++i) count += in_phase_[i];
    return count;
  }

  const std::string id_;
  const config::Endpoint green_;
  const std::chrono::milliseconds connect_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::uint64_t, ParticipantState> participants_;
  std::array<std::size_t, kParticipantPhaseCount> in_phase_{};  // participants per phase
  bool interrupted_ = false;
  bool retiring_ = false;
  Notifier retire_signal_;
  AsyncSemaphore retire_turns_{kRetiringAtOnce};
};

}  // namespace pgflip::proxy
