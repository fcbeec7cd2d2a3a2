// The switchover state machine: the steps of kSteps run in order; a failure before the
// commit point rolls back every step reached, newest first.
#include "proxy/control/switchover_machine.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "proxy/base/utc_time.hpp"

namespace pgflip::proxy {

namespace {

/// The crash test hook: PGFLIP_TEST_EXIT_AT=<step> makes pgflip exit as that step begins.
void maybe_exit_at(Step step) {
  const char* at = std::getenv("PGFLIP_TEST_EXIT_AT");
  if (at && step_name(step) == at) {
    spdlog::critical("PGFLIP_TEST_EXIT_AT={}: exiting now (test hook)", at);
    spdlog::default_logger()->flush();
    std::_Exit(70);
  }
}

/// Milliseconds with one decimal, for step details.
std::string format_ms(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", ms);
  return text;
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

const StepSpec& spec(Step step) { return kSteps[static_cast<std::size_t>(step)]; }

/// The transition function: the next step in kSteps' order, none after the last.
std::optional<Step> next_step(Step step) {
  if (step == kSteps.back().step) return std::nullopt;
  return static_cast<Step>(static_cast<int>(step) + 1);
}

}  // namespace

std::string_view step_name(Step step) {
  switch (step) {
    case Step::kGuardrails:
      return "guardrails";
    case Step::kCatchup:
      return "catchup";
    case Step::kPrewarm:
      return "prewarm";
    case Step::kPark:
      return "park";
    case Step::kFence:
      return "fence";
    case Step::kDrain:
      return "drain";
    case Step::kSequences:
      return "sequences";
    case Step::kCommit:
      return "commit";
    case Step::kFlip:
      return "flip";
    case Step::kCleanup:
      return "cleanup";
  }
  return "?";
}

std::string_view outcome_name(SwitchoverOutcome outcome) {
  switch (outcome) {
    case SwitchoverOutcome::kCommitted:
      return "committed";
    case SwitchoverOutcome::kAborted:
      return "aborted";
    case SwitchoverOutcome::kDryRun:
      return "dry-run";
  }
  return "?";
}

std::string_view phase_name(ParticipantPhase phase) {
  switch (phase) {
    case ParticipantPhase::kJoined:
      return "joined";
    case ParticipantPhase::kPrewarmed:
      return "prewarmed";
    case ParticipantPhase::kHeld:
      return "held";
    case ParticipantPhase::kParked:
      return "parked";
    case ParticipantPhase::kMoved:
      return "moved";
    case ParticipantPhase::kReleased:
      return "released";
    case ParticipantPhase::kEnded:
      return "ended";
    case ParticipantPhase::kFailed:
      return "failed";
  }
  return "?";
}

SwitchoverMachine::SwitchoverMachine(std::string id, std::shared_ptr<const config::Config> config,
                                     SwitchoverOptions options, SwitchoverServers& servers,
                                     SwitchoverFleet& fleet, Router& router,
                                     SwitchoverStateFile state_file, SwitchoverObserver observer)
    : id_(std::move(id)),
      config_(std::move(config)),
      cfg_(*config_),
      options_(options),
      servers_(servers),
      fleet_(fleet),
      router_(router),
      state_file_(std::move(state_file)),
      observer_(std::move(observer)),
      run_(std::make_shared<SwitchoverRun>(id_, *cfg_.green, cfg_.server.connect_timeout)) {}

bool SwitchoverMachine::request_abort() {
  std::lock_guard lock(decision_mutex_);
  if (phase_ != Phase::kRunning) return false;
  phase_ = Phase::kAbortRequested;
  operator_abort_ = true;
  run_->interrupt();  // a step waiting for the sessions notices at once
  return true;
}

void SwitchoverMachine::transition(Phase to) {
  std::lock_guard lock(decision_mutex_);
  phase_ = to;
}

void SwitchoverMachine::check_abort() const {
  std::lock_guard lock(decision_mutex_);
  if (phase_ == Phase::kAbortRequested) throw StepFailure{current_, "aborted by the operator"};
}

void SwitchoverMachine::check() const {
  check_abort();
  if (Clock::now() > deadline_) {
    throw StepFailure{current_, "switchover timeout (" + std::to_string(options_.timeout.count()) +
                                    " ms) passed"};
  }
}

SwitchoverMachine::Clock::time_point SwitchoverMachine::step_deadline(StepLimit limit) const {
  const auto now = Clock::now();
  const auto& so = cfg_.switchover;
  switch (limit) {
    case StepLimit::kRun:
      return deadline_;
    case StepLimit::kCatchup:
      return std::min(deadline_, now + so.catchup_timeout);
    case StepLimit::kLogins:
      return std::min(deadline_, now + cfg_.server.connect_timeout);
    case StepLimit::kDrain:
      return std::min(deadline_, now + options_.drain_timeout);
    case StepLimit::kSentinel:
      return std::min(deadline_, now + so.sentinel_timeout);
    case StepLimit::kFlip:
      return now + kFlipTimeout;
    case StepLimit::kNone:
      return Clock::time_point::max();
  }
  return deadline_;
}

SwitchoverReport SwitchoverMachine::run() {
  start_ = Clock::now();
  started_at_ =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  deadline_ = start_ + options_.timeout;
  std::optional<Step> step = kSteps.front().step;
  try {
    for (; step && spec(*step).undo != StepUndo::kRollForward; step = next_step(*step)) {
      run_step(*step);
      if (options_.dry_run) {  // a dry run ends after the guardrails
        transition(Phase::kEnded);
        return report(SwitchoverOutcome::kDryRun);
      }
    }
  } catch (const StepFailure& failure) {
    roll_back(failure);
    return report(SwitchoverOutcome::kAborted);
  } catch (const std::exception& error) {
    roll_back(StepFailure{current_, error.what()});
    return report(SwitchoverOutcome::kAborted);
  }
  // Past the commit point: roll forward only; a failure here is reported, never undone.
  for (; step; step = next_step(*step)) run_step(*step);
  transition(Phase::kEnded);
  return report(SwitchoverOutcome::kCommitted);
}

void SwitchoverMachine::run_step(Step step) {
  maybe_exit_at(step);
  current_ = step;
  step_started_ = Clock::now();
  const auto wall = std::chrono::system_clock::now();
  step_deadline_ = step_deadline(spec(step).limit);
  step_detail_.clear();
  if (step == Step::kPark) park_started_ = step_started_;
  switch (step) {
    case Step::kGuardrails:
      guardrails();
      break;
    case Step::kCatchup:
      catchup();
      break;
    case Step::kPrewarm:
      prewarm();
      break;
    case Step::kPark:
      park();
      break;
    case Step::kFence:
      fence();
      break;
    case Step::kDrain:
      drain();
      break;
    case Step::kSequences:
      sequences();
      break;
    case Step::kCommit:
      commit();
      break;
    case Step::kFlip:
      flip();
      break;
    case Step::kCleanup:
      cleanup();
      break;
  }
  StepRecord record{step, ms_since(step_started_),
                    std::chrono::duration<double>(wall.time_since_epoch()).count(),
                    std::move(step_detail_)};
  steps_.push_back(record);
  if (observer_.step_done) observer_.step_done(steps_.back());
  if (spec(step).undo != StepUndo::kRollForward && step != Step::kCommit && !options_.dry_run) {
    check();
  }
}

std::vector<std::uint64_t> SwitchoverMachine::wait_phase(ParticipantPhase phase,
                                                         Clock::time_point until) {
  return run_->wait_for(phase, std::min(until, deadline_));
}

bool SwitchoverMachine::wait_for_sentinel(Clock::time_point until) {
  // In slices, so that `abort` and the run's deadline are noticed promptly.
  for (;;) {
    const auto slice = std::min(until, Clock::now() + std::chrono::milliseconds(20));
    if (servers_.sentinel_applied(slice)) return true;
    check();
    if (Clock::now() >= until) return false;
  }
}

std::string SwitchoverMachine::failed_participants() const {
  std::string reasons;
  for (const auto& [sid, state] : run_->snapshot()) {
    if (state.phase == ParticipantPhase::kFailed) {
      reasons += (reasons.empty() ? "" : "; ") + ("c" + std::to_string(sid) + ": " + state.detail);
    }
  }
  return reasons;
}

void SwitchoverMachine::guardrails() {
  const auto problems = servers_.guardrail_problems();
  if (!problems.empty()) {
    std::string reason;
    for (const auto& p : problems) reason += (reason.empty() ? "" : "; ") + p;
    throw StepFailure{Step::kGuardrails, reason};
  }
  step_detail_ = "lag, sync, DDL, precheck and transaction age within limits";
  if (options_.dry_run) participants_ = fleet_.participants();
}

void SwitchoverMachine::catchup() {
  // While clients still run, write sentinels until green applies one within
  // catchup_target_ms, so that parked clients wait only for the last few milliseconds of
  // replication instead of whatever backlog green had.
  servers_.open();
  const auto& so = cfg_.switchover;
  if (so.catchup_timeout.count() == 0) {
    step_detail_ = "skipped (switchover.catchup_timeout_ms = 0)";
    return;
  }
  const auto target = static_cast<double>(so.catchup_target.count());
  for (int round = 1;; ++round) {
    servers_.write_sentinel(id_ + "/catchup-" + std::to_string(round));
    const std::string rounds = " after " + std::to_string(round) + " sentinel(s)";
    if (!wait_for_sentinel(step_deadline_)) {
      step_detail_ = "green had not applied the last sentinel" + rounds +
                     " within catchup_timeout_ms; the drain waits for the rest";
      return;
    }
    const double ms = servers_.sentinel_ms();
    const std::string took = "green applied a sentinel in " + format_ms(ms) + " ms";
    if (ms <= target) {
      step_detail_ =
          took + rounds + " (catchup_target_ms " + std::to_string(so.catchup_target.count()) + ")";
      return;
    }
    if (Clock::now() >= step_deadline_) {
      step_detail_ = took + rounds + ", still above catchup_target_ms " +
                     std::to_string(so.catchup_target.count()) + "; the drain waits for the rest";
      return;
    }
  }
}

void SwitchoverMachine::prewarm() {
  fleet_.hold_logins(true);
  fleet_.wait_for_logins(step_deadline(StepLimit::kLogins));
  participants_ = fleet_.participants();
  for (auto& s : participants_) run_->join(s->id());
  // At most prewarm_concurrency green logins at once: each forks a backend on green while the
  // clients still run on blue, and each login's own timeout starts when it starts.
  const std::size_t at_once = std::max<std::uint32_t>(1, cfg_.switchover.prewarm_concurrency);
  for (auto& s : participants_) {
    if (joined_ >= at_once &&
        !run_->wait_for_count(ParticipantPhase::kPrewarmed, joined_ + 1 - at_once,
                              std::min(step_deadline_, deadline_))) {
      break;  // the deadline or an abort: the ones not started count as late below
    }
    s->join_switchover(run_);
    ++joined_;
  }
  const auto late = wait_phase(ParticipantPhase::kPrewarmed, step_deadline_);
  check_abort();
  if (!late.empty()) {
    const std::size_t not_started = participants_.size() - joined_;
    throw StepFailure{
        Step::kPrewarm,
        std::to_string(late.size()) + " green login(s) did not finish" +
            (not_started == 0 ? ""
                              : " (" + std::to_string(not_started) +
                                    " not started: switchover.prewarm_concurrency = " +
                                    std::to_string(at_once) + ")")};
  }
  if (auto failed = failed_participants(); !failed.empty()) {
    throw StepFailure{Step::kPrewarm, failed};
  }
  step_detail_ = std::to_string(participants_.size()) + " green connection(s) ready";
}

void SwitchoverMachine::park() {
  for (auto& s : participants_) s->decide(SwitchoverDecision::kPark, {});
  // Stragglers are the sessions still inside a transaction after the drain timeout; the others
  // are held and capturing their state (below).
  const auto late = wait_phase(ParticipantPhase::kHeld, step_deadline_);
  check_abort();
  if (!late.empty()) {
    stragglers_ = late;
    if (options_.on_straggler == config::StragglerPolicy::kAbort) {
      throw StepFailure{Step::kPark, std::to_string(late.size()) +
                                         " session(s) still in a transaction after drain timeout "
                                         "(on_straggler = abort)"};
    }
    for (auto sid : late) {
      for (auto& s : participants_) {
        if (s->id() != sid) continue;
        s->decide(SwitchoverDecision::kTerminate,
                  "terminating connection: its transaction was still open when pgflip switched "
                  "over to green (switchover.on_straggler = cancel); the transaction was rolled "
                  "back");
      }
    }
    (void)run_->wait_for(ParticipantPhase::kParked,
                         std::min(deadline_, Clock::now() + kStragglerEndTimeout));
    check_abort();
  }
  // Every session held at its boundary captures its state on blue and restores it on green.
  if (const auto capturing = wait_phase(ParticipantPhase::kParked, deadline_); !capturing.empty()) {
    check_abort();
    throw StepFailure{Step::kPark, std::to_string(capturing.size()) +
                                       " session(s) held at a boundary had not captured their "
                                       "state when the switchover timeout passed"};
  }
  check_abort();
  if (auto failed = failed_participants(); !failed.empty()) throw StepFailure{Step::kPark, failed};
  std::size_t unmovable = 0;
  std::string why;  // the first few sessions' reasons
  for (const auto& [sid, state] : run_->snapshot()) {
    if (state.unmovable.empty() || state.phase != ParticipantPhase::kParked) continue;
    if (++unmovable <= kUnmovableListed) {
      why += (why.empty() ? "" : "; ") + ("c" + std::to_string(sid) + ": " + state.unmovable);
    }
  }
  if (unmovable > 0 && cfg_.switchover.unmovable_sessions == config::UnmovablePolicy::kAbort) {
    if (unmovable > kUnmovableListed) {
      why += "; " + std::to_string(unmovable - kUnmovableListed) + " more";
    }
    throw StepFailure{Step::kPark, std::to_string(unmovable) + " session(s) cannot move (" + why +
                                       ") (switchover.unmovable_sessions = abort)"};
  }
  step_detail_ = std::to_string(participants_.size() - late.size()) + " parked, " +
                 std::to_string(late.size()) + " straggler(s), " + std::to_string(unmovable) +
                 " unmovable";
}

void SwitchoverMachine::fence() {
  std::vector<int> keep;
  for (const auto& [sid, state] : run_->snapshot()) {
    if (state.blue_pid) keep.push_back(state.blue_pid);
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  const std::size_t terminated = servers_.fence(keep, id_, left);
  step_detail_ = "read-only default, no non-superuser logins; " + std::to_string(terminated) +
                 " other backend(s) terminated";
}

void SwitchoverMachine::drain() {
  // When green shows a sentinel written after the fence, it has applied everything.
  servers_.write_sentinel(id_);
  if (!wait_for_sentinel(step_deadline_)) {
    throw StepFailure{Step::kDrain, "green did not apply sentinel " + id_ + " within " +
                                        std::to_string(cfg_.switchover.sentinel_timeout.count()) +
                                        " ms (switchover.sentinel_timeout_ms; behind: " +
                                        servers_.sentinel_missing() + ")"};
  }
  step_detail_ = "sentinel " + id_ + " applied on green " + format_ms(servers_.sentinel_ms()) +
                 " ms after its commit on blue";
}

void SwitchoverMachine::sequences() {
  // Read after the fence, so that no value can move on.
  sequences_ = servers_.copy_sequences();
  step_detail_ = std::to_string(sequences_) + " sequence(s) set on green";
}

void SwitchoverMachine::commit() {
  const auto previous = router_.active();
  const ActiveState state{"green", previous.epoch + 1, id_, utc_now(), {}, {}};
  std::string durability;
  {
    // The commit point, under the lock request_abort() takes: an abort is either accepted
    // before the state file is written (and the run rolls back), or refused after.
    std::lock_guard lock(decision_mutex_);
    if (phase_ == Phase::kAbortRequested)
      throw StepFailure{Step::kCommit, "aborted by the operator"};
    try {
      durability = state_file_.store(state);
    } catch (const std::exception& error) {
      // The rename may have happened before the failure (a failed directory fsync): if the
      // file already says green, a restart would serve green, so this run must too.
      std::optional<ActiveState> on_disk;
      try {
        on_disk = state_file_.load();
      } catch (const std::exception&) {
      }
      if (!on_disk || on_disk->active != "green" || on_disk->switchover_id != id_) throw;
      spdlog::error(
          "switchover {}: the state file says green but storing it reported: {}; "
          "rolling forward",
          id_, error.what());
    }
    phase_ = Phase::kCommitted;
  }
  router_.set_active(Router::Active{"green", *cfg_.green, previous.epoch + 1});
  step_detail_ = "state file " + cfg_.switchover.state_file + " says green (epoch " +
                 std::to_string(previous.epoch + 1) + ")" + (durability.empty() ? "" : "; ") +
                 durability;
}

void SwitchoverMachine::flip() {
  for (auto& s : participants_) s->decide(SwitchoverDecision::kCommit, {});
  const auto late = run_->wait_for(ParticipantPhase::kMoved, step_deadline_);
  released_at_ = Clock::now();
  fleet_.hold_logins(false);
  std::size_t moved = 0;
  for (const auto& [sid, state] : run_->snapshot())
    moved += state.phase == ParticipantPhase::kMoved;
  step_detail_ = std::to_string(moved) + " session(s) moved" +
                 (late.empty() ? ""
                               : ", " + std::to_string(late.size()) + " did not answer in " +
                                     std::to_string(kFlipTimeout.count()) + " s");
}

void SwitchoverMachine::cleanup() {
  step_detail_ = "subscription, slot and publication dropped; blue stays fenced (old)";
  try {
    servers_.cleanup();
  } catch (const std::exception& e) {
    step_detail_ =
        std::string("replication cleanup failed (run 'pgflipctl replication cleanup'): ") +
        e.what();
    spdlog::error("switchover {}: {}", id_, step_detail_);
  }
  // Only now do the old blue connections close, one at a time: the first transactions of the
  // released clients run on green backends that are new (their caches cold), and each blue
  // backend's exit would take CPU from them.
  run_->start_retiring();
}

void SwitchoverMachine::roll_back(const StepFailure& failure) {
  transition(Phase::kRollingBack);
  spdlog::warn("switchover {} aborted at {}: {}", id_, step_name(failure.step), failure.reason);
  failed_step_ = failure.step;
  reason_ = failure.reason;
  // Every step reached, newest first; each kind of undo once.
  bool unfenced = false, released = false;
  for (int i = static_cast<int>(failure.step); i >= 0; --i) {
    switch (kSteps[static_cast<std::size_t>(i)].undo) {
      case StepUndo::kUnfence:
        if (unfenced) break;
        unfenced = true;
        try {
          servers_.unfence();
        } catch (const std::exception& e) {
          reason_ += std::string("; UNFENCE FAILED, blue may still be read-only: ") + e.what();
          spdlog::error("switchover {}: unfence failed: {}", id_, e.what());
        }
        break;
      case StepUndo::kReleaseSessions:
        if (released) break;
        released = true;
        // Only the sessions that joined: one never asked (a prewarm cut short) has no part to
        // end and never left blue, so it counts as released at once.
        for (std::size_t j = 0; j < participants_.size(); ++j) {
          if (j < joined_) {
            participants_[j]->decide(SwitchoverDecision::kAbort, {});
          } else {
            run_->report(participants_[j]->id(), ParticipantPhase::kReleased);
          }
        }
        run_->clear_interrupt();
        (void)run_->wait_for(ParticipantPhase::kReleased, Clock::now() + kReleaseTimeout);
        released_at_ = Clock::now();
        fleet_.hold_logins(false);
        break;
      case StepUndo::kNothing:
      case StepUndo::kRollForward:
        break;
    }
  }
  transition(Phase::kEnded);
  if (observer_.rolled_back) {
    observer_.rolled_back("aborted at " + std::string(step_name(failure.step)) + ": " +
                          failure.reason + "; blue serves on");
  }
}

SwitchoverReport SwitchoverMachine::report(SwitchoverOutcome outcome) const {
  SwitchoverReport r;
  r.id = id_;
  r.outcome = outcome;
  {
    std::lock_guard lock(decision_mutex_);
    r.operator_abort = operator_abort_ && outcome == SwitchoverOutcome::kAborted;
  }
  r.failed_step = failed_step_;
  r.reason = reason_;
  r.started_at = started_at_;
  r.total_ms = ms_since(start_);
  if (park_started_ != Clock::time_point{}) {
    const auto end = released_at_ != Clock::time_point{} ? released_at_ : Clock::now();
    r.window_ms = std::chrono::duration<double, std::milli>(end - park_started_).count();
  }
  r.steps = steps_;
  r.stragglers = stragglers_;
  r.sequences = sequences_;
  r.active = router_.active().name;
  r.green_address = cfg_.green->address();
  const auto participants = run_->snapshot();
  r.sessions = outcome == SwitchoverOutcome::kDryRun ? participants_.size() : participants.size();
  std::vector<double> held;
  for (const auto& [sid, state] : participants) {
    if (state.phase == ParticipantPhase::kMoved) ++r.moved;
    if (state.phase == ParticipantPhase::kReleased) ++r.released;
    if (state.phase == ParticipantPhase::kEnded || state.phase == ParticipantPhase::kFailed) {
      r.ended.push_back({sid, state.phase, state.detail});
    }
    if (state.had_held_request) held.push_back(state.held_ms);
    SessionRecord record{sid, state.phase, 0, state.had_held_request, state.held_ms};
    if (state.parked_at != Clock::time_point{}) {
      const auto end = state.done_at != Clock::time_point{} ? state.done_at : Clock::now();
      record.parked_ms = std::chrono::duration<double, std::milli>(end - state.parked_at).count();
    }
    r.participants.push_back(record);
  }
  std::sort(held.begin(), held.end());
  r.parked_clients = held.size();
  r.max_parked_ms = held.empty() ? 0 : held.back();
  r.p99_parked_ms =
      held.empty() ? 0 : held[std::min(held.size() - 1, (held.size() * 99 + 99) / 100 - 1)];
  return r;
}

}  // namespace pgflip::proxy
