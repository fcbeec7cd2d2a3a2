// The switchover as one state machine: a table of steps, each with its deadline and its undo,
// one transition function, and commit and abort decided under one lock.
//
// Before the commit point every failure, overrun deadline or operator `abort` rolls back:
// the undo of every step reached runs in reverse (unfence blue, release the sessions to blue,
// open the login gate). From the commit point on the machine only rolls forward.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/control/state_store.hpp"
#include "proxy/control/switchover_ports.hpp"
#include "proxy/control/switchover_report.hpp"
#include "proxy/session/proxy_context.hpp"

namespace pgflip::proxy {

struct SwitchoverOptions {
  std::chrono::milliseconds timeout;        // everything before the commit point
  std::chrono::milliseconds drain_timeout;  // sessions reach a transaction boundary
  config::StragglerPolicy on_straggler;
  bool dry_run = false;
};

/// What bounds a step: the run's deadline, or a tighter one of its own.
enum class StepLimit : std::uint8_t {
  kRun,       // switchover.timeout_ms from the start
  kCatchup,   // switchover.catchup_timeout_ms from the step's start
  kLogins,    // server.connect_timeout_ms from the step's start
  kDrain,     // switchover.drain_timeout_ms from the step's start
  kSentinel,  // switchover.sentinel_timeout_ms from the step's start
  kFlip,      // kFlipTimeout from the step's start (after the commit point: no abort)
  kNone,      // bounded by the servers' statement_timeout only
};

/// What an abort at or after a step must undo (each undo runs once, newest first).
enum class StepUndo : std::uint8_t {
  kNothing,
  kReleaseSessions,  // abort decision to every joined session, wait for them, open the gate
  kUnfence,          // restore blue's writers (also when the fence failed halfway)
  kRollForward,      // past the commit point: there is no undo
};

struct StepSpec {
  Step step;
  StepLimit limit;
  StepUndo undo;
};

/// The steps in order. README "The switchover" numbers them 1 to 10 in this order.
inline constexpr std::array<StepSpec, kStepCount> kSteps{{
    {Step::kGuardrails, StepLimit::kRun, StepUndo::kNothing},
    {Step::kCatchup, StepLimit::kCatchup, StepUndo::kNothing},
    {Step::kPrewarm, StepLimit::kRun, StepUndo::kReleaseSessions},
    {Step::kPark, StepLimit::kDrain, StepUndo::kReleaseSessions},
    {Step::kFence, StepLimit::kRun, StepUndo::kUnfence},
    {Step::kDrain, StepLimit::kSentinel, StepUndo::kNothing},
    {Step::kSequences, StepLimit::kRun, StepUndo::kNothing},
    {Step::kCommit, StepLimit::kRun, StepUndo::kNothing},
    {Step::kFlip, StepLimit::kFlip, StepUndo::kRollForward},
    {Step::kCleanup, StepLimit::kNone, StepUndo::kRollForward},
}};

/// How long the flip waits for every session to report that it moved.
inline constexpr std::chrono::seconds kFlipTimeout{30};
/// How long an abort waits for the sessions to report their release to blue.
inline constexpr std::chrono::seconds kReleaseTimeout{5};
/// How long terminated stragglers get to end before the park step goes on.
inline constexpr std::chrono::seconds kStragglerEndTimeout{2};
/// How many unmovable sessions an abort at park names (the report lists them all).
inline constexpr std::size_t kUnmovableListed = 5;

/// The durable state file, as the machine uses it.
struct SwitchoverStateFile {
  /// Writes the state; throws when it failed before the rename (the old file is intact).
  /// Returns a note when the new file is in place but its durability is in doubt (a failed
  /// directory fsync): the run rolls forward and reports it.
  std::function<std::string(ActiveState)> store;
  std::function<std::optional<ActiveState>()> load;  // after a failed store
};

/// What the machine reports as it runs (called on the machine's thread).
struct SwitchoverObserver {
  std::function<void(const StepRecord&)> step_done;
  std::function<void(const std::string& text)>
      rolled_back;  // "aborted at park: ...; blue serves on"
};

/// One switchover run. Blocking: run() on a control thread; request_abort() from any thread.
class SwitchoverMachine {
 public:
  using Clock = std::chrono::steady_clock;

  SwitchoverMachine(std::string id, std::shared_ptr<const config::Config> config,
                    SwitchoverOptions options, SwitchoverServers& servers, SwitchoverFleet& fleet,
                    Router& router, SwitchoverStateFile state_file, SwitchoverObserver observer);

  /// Runs every step to the commit point and beyond, or rolls back. Once only.
  [[nodiscard]] SwitchoverReport run();

  /// Thread-safe. Asks the run to roll back at its next check. False once the commit point
  /// is passed (decided under the same lock as the commit) or after the run ended.
  bool request_abort();

 private:
  /// Where the run is; changed only in transition() and, for kAbortRequested, in
  /// request_abort(), both under decision_mutex_.
  enum class Phase : std::uint8_t {
    kRunning,         // steps before the commit point
    kAbortRequested,  // the operator asked to roll back: the next check throws
    kCommitted,       // the state file says green: roll forward only
    kRollingBack,     // undoing the steps reached; an abort request changes nothing now
    kEnded,
  };

  struct StepFailure {
    Step step;
    std::string reason;
  };

  void transition(Phase to);
  void run_step(Step step);
  /// Throws a StepFailure when an abort was requested.
  void check_abort() const;
  /// Throws a StepFailure when an abort was requested or the run's deadline passed.
  void check() const;
  [[nodiscard]] Clock::time_point step_deadline(StepLimit limit) const;
  [[nodiscard]] std::vector<std::uint64_t> wait_phase(ParticipantPhase phase,
                                                      Clock::time_point until);
  [[nodiscard]] bool wait_for_sentinel(Clock::time_point until);
  [[nodiscard]] std::string failed_participants() const;
  void roll_back(const StepFailure& failure);
  [[nodiscard]] SwitchoverReport report(SwitchoverOutcome outcome) const;

  void guardrails();
  void catchup();
  void prewarm();
  void park();
  void fence();
  void drain();
  void sequences();
  void commit();
  void flip();
  void cleanup();

  const std::string id_;
  const std::shared_ptr<const config::Config> config_;
  const config::Config& cfg_;
  const SwitchoverOptions options_;
  SwitchoverServers& servers_;
  SwitchoverFleet& fleet_;
  Router& router_;
  const SwitchoverStateFile state_file_;
  const SwitchoverObserver observer_;
  const std::shared_ptr<SwitchoverRun> run_;

  mutable std::mutex decision_mutex_;
  Phase phase_ = Phase::kRunning;  // guarded by decision_mutex_
  bool operator_abort_ = false;    // guarded by decision_mutex_

  // On the machine's thread only.
  Clock::time_point start_;
  double started_at_ = 0;             // Unix seconds, for the report
  Clock::time_point park_started_{};  // the window in which clients are held opens
  Clock::time_point released_at_{};   // ... and closes (the flip's end, or the rollback's release)
  Clock::time_point deadline_;
  Step current_ = Step::kGuardrails;
  Clock::time_point step_started_;
  Clock::time_point step_deadline_;
  std::string step_detail_;
  std::vector<StepRecord> steps_;
  std::vector<std::shared_ptr<SwitchoverParticipant>> participants_;
  std::size_t joined_ = 0;  // participants_[0, joined_) were asked to join (prewarm)
  std::vector<std::uint64_t> stragglers_;
  std::size_t sequences_ = 0;
  std::optional<Step> failed_step_;
  std::string reason_;
};

}  // namespace pgflip::proxy
