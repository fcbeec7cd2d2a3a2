// What a switchover did, as a typed record: its steps in the README's order, their timings,
// what became of each session. The admin layer renders it (text, JSON, console rows).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/session/switchover_run.hpp"

namespace pgflip::proxy {

/// The switchover's steps, in the order they run (README "The switchover", steps 1 to 10).
enum class Step : std::uint8_t {
  kGuardrails,  // change nothing: replication healthy, lag, DDL, precheck, transaction age
  kCatchup,     // sentinels until green applies one within catchup_target_ms
  kPrewarm,     // hold new logins; one authenticated green connection per session
  kPark,        // every client held at its next transaction boundary, state captured
  kFence,       // blue refuses writers that bypass pgflip
  kDrain,       // a sentinel written after the fence is visible on green
  kSequences,   // blue's sequences set on green
  kCommit,      // the commit point: the state file says green, durably
  kFlip,        // every parked session replays its state on green and is released there
  kCleanup,     // forward replication dropped; blue stays fenced (old)
};
inline constexpr std::size_t kStepCount = 10;

[[nodiscard]] std::string_view step_name(Step step);

enum class SwitchoverOutcome : std::uint8_t {
  kCommitted,  // green serves
  kAborted,    // rolled back before the commit point: blue serves
  kDryRun,     // guardrails only
};

[[nodiscard]] std::string_view outcome_name(SwitchoverOutcome outcome);
[[nodiscard]] std::string_view phase_name(ParticipantPhase phase);

struct StepRecord {
  Step step = Step::kGuardrails;
  double ms = 0;
  double started_at = 0;  // Unix seconds, so that client-side logs can be lined up with a step
  std::string detail;
};

struct EndedSession {
  std::uint64_t session = 0;
  ParticipantPhase phase = ParticipantPhase::kEnded;
  std::string reason;
};

/// One session that took part: where it ended and how long the switchover held it.
struct SessionRecord {
  std::uint64_t session = 0;
  ParticipantPhase phase = ParticipantPhase::kJoined;  // its last phase (moved, released, ...)
  double parked_ms = 0;       // from its park (at a transaction boundary) to its move or release
  bool held_request = false;  // its client sent a request while it was parked
  double held_ms = 0;         // how long that request waited
};

struct SwitchoverReport {
  std::string id;
  double started_at = 0;  // Unix seconds when the run began
  SwitchoverOutcome outcome = SwitchoverOutcome::kAborted;
  bool operator_abort = false;      // aborted by `abort`, not by a failure or a deadline
  std::optional<Step> failed_step;  // where an abort happened
  std::string reason;               // why (empty when committed)
  double total_ms = 0;
  /// Clients held: from the park step's start to their release (the flip's end, or the end of
  /// a rollback's release); 0 when the run never reached the park step.
  double window_ms = 0;
  std::vector<StepRecord> steps;          // the steps that finished, in order
  std::size_t sessions = 0;               // live sessions that took part
  std::size_t moved = 0;                  // serving from green
  std::size_t released = 0;               // released back to blue by an abort
  std::vector<EndedSession> ended;        // terminated, failed or gone
  std::vector<std::uint64_t> stragglers;  // still in a transaction at the drain timeout
  std::size_t parked_clients = 0;         // sessions with a request held while parked
  double max_parked_ms = 0;
  double p99_parked_ms = 0;
  std::vector<SessionRecord> participants;  // every session that took part, by id
  std::size_t sequences = 0;
  std::string active;         // the environment serving when the run ended
  std::string green_address;  // host:port, for the dry run's answer
};

}  // namespace pgflip::proxy
