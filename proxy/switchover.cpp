// The switchover orchestrator: guardrails, pre-warm, park, fence, drain, sequences, commit, flip.
//
// Before the commit point every failure (or an overrun deadline, or `abort`) rolls back:
// blue is unfenced and the parked clients are released to it. After the commit point
// pgflip only rolls forward: a restarted pgflip reads the state file and serves green.
#include "proxy/switchover.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

#include "proxy/control_plane.hpp"
#include "proxy/session.hpp"
#include "proxy/state_store.hpp"
#include "proxy/switchover_run.hpp"
#include "replication/error.hpp"
#include "replication/manager.hpp"

namespace pgflip::proxy {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

/// The crash test hook: PGFLIP_TEST_EXIT_AT=<step> makes pgflip exit as that step begins.
void maybe_exit_at(std::string_view step) {
  const char* at = std::getenv("PGFLIP_TEST_EXIT_AT");
  if (at && step == at) {
    spdlog::critical("PGFLIP_TEST_EXIT_AT={}: exiting now (test hook)", at);
    spdlog::default_logger()->flush();
    std::_Exit(70);
  }
}

/// How often green is asked whether a sentinel has arrived (one indexed lookup each).
constexpr std::chrono::milliseconds kSentinelPoll{2};

/// Milliseconds with one decimal, for step details.
std::string format_ms(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", ms);
  return text;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string_view phase_name(ParticipantPhase phase) {
  switch (phase) {
    case ParticipantPhase::kJoined:
      return "joined";
    case ParticipantPhase::kPrewarmed:
      return "prewarmed";
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

struct StepFailure {
  std::string step;
  std::string reason;
};

/// One run's bookkeeping: steps and their durations, for events and the report.
class Steps {
 public:
  Steps(const AdminEmit& emit, ProxyMetrics& metrics) : emit_(emit), metrics_(metrics) {}

  void begin(std::string name) {
    maybe_exit_at(name);
    current_ = std::move(name);
    started_ = Clock::now();
    started_wall_ = std::chrono::system_clock::now();
  }
  void end(const std::string& detail) {
    metrics_.switchover_step(current_, Clock::now() - started_);
    const double ms = ms_since(started_);
    // Wall-clock start (Unix seconds) so that client-side logs can be lined up with a step.
    const double at = std::chrono::duration<double>(started_wall_.time_since_epoch()).count();
    steps_.push_back(
        json::object{{"step", current_}, {"ms", ms}, {"started_at", at}, {"detail", detail}});
    char line[64];
    std::snprintf(line, sizeof line, "%-11s %8.1f ms  ", current_.c_str(), ms);
    emit_("step", std::string(line) + detail, steps_.back());
  }
  [[nodiscard]] const std::string& current() const { return current_; }
  [[nodiscard]] json::array& list() { return steps_; }

 private:
  const AdminEmit& emit_;
  ProxyMetrics& metrics_;
  std::string current_;
  Clock::time_point started_;
  std::chrono::system_clock::time_point started_wall_;
  json::array steps_;
};

}  // namespace

std::variant<SwitchoverOptions, std::string> Switchover::options_from(
    const json::object& args) const {
  const auto snapshot = context_.config();
  const auto& config = snapshot->switchover;
  SwitchoverOptions options{config.timeout, config.drain_timeout, config.on_straggler, false};
  auto seconds = [&](std::string_view key, std::chrono::milliseconds& out) -> std::string {
    const json::value* v = args.if_contains(key);
    if (!v) return {};
    const double s = v->is_double() ? v->as_double() : v->is_int64() ? double(v->as_int64()) : -1;
    if (s <= 0 || s > 86400) return std::string(key) + " must be a number of seconds in (0, 86400]";
    out = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
    return {};
  };
  if (auto e = seconds("timeout_s", options.timeout); !e.empty()) return e;
  if (auto e = seconds("drain_timeout_s", options.drain_timeout); !e.empty()) return e;
  if (const json::value* v = args.if_contains("on_straggler")) {
    if (!v->is_string()) return std::string("on_straggler must be \"abort\" or \"cancel\"");
    if (v->as_string() == "abort") {
      options.on_straggler = config::StragglerPolicy::kAbort;
    } else if (v->as_string() == "cancel") {
      options.on_straggler = config::StragglerPolicy::kCancel;
    } else {
      return std::string("on_straggler must be \"abort\" or \"cancel\"");
    }
  }
  if (const json::value* v = args.if_contains("dry_run"))
    options.dry_run = v->is_bool() && v->as_bool();
  return options;
}

bool Switchover::request_abort() {
  if (!running_ || committed_) return false;
  abort_requested_ = true;
  return true;
}

void Switchover::recover() {
  const auto snapshot = context_.config();
  const auto& config = *snapshot;
  const auto state = load_active_state(config.switchover.state_file);
  if (state && state->active == "green") {
    if (!config.green) {
      throw std::runtime_error("state file " + config.switchover.state_file +
                               " says green is active, but no [green] is configured");
    }
    context_.router.set_active(Router::Active{"green", *config.green, state->epoch});
    spdlog::warn("state file {}: green is active since switchover {} ({}); serving green",
                 config.switchover.state_file, state->switchover_id, state->committed_at);
    return;
  }
  context_.router.set_active(Router::Active{"blue", config.blue, state ? state->epoch : 0});
  if (!config.green || config.blue.admin_user.empty()) return;
  // A switchover that died before its commit point may have left blue fenced.
  try {
    replication::Manager manager(ControlPlane::replication_settings(config));
    if (manager.fence_state().recorded) {
      const auto result = manager.unfence();
      spdlog::warn("recovered from an interrupted switchover: blue unfenced ({:.3f}s)",
                   result.seconds);
    }
  } catch (const std::exception& e) {
    spdlog::error("could not check blue's fence at start-up: {}", e.what());
  }
}

AdminReply Switchover::run(const SwitchoverOptions& options, const AdminEmit& emit) {
  // The whole run uses the configuration it started with, whatever a reload does meanwhile.
  const auto snapshot = context_.config();
  const auto& config = *snapshot;
  if (!config.green) return AdminReply::failure("config", "no [green] is configured");
  if (context_.router.active().name == "green") {
    return AdminReply::failure("state", "green is already active; a switchover only rolls forward");
  }
  bool expected = false;
  if (!running_.compare_exchange_strong(expected, true)) {
    return AdminReply::failure("busy", "a switchover is already running");
  }
  committed_ = false;
  abort_requested_ = false;
  struct Reset {
    std::atomic<bool>& flag;
    ~Reset() { flag = false; }
  } reset{running_};

  const auto start = Clock::now();
  const auto deadline = start + options.timeout;
  const std::string id = "so-" + std::to_string(std::time(nullptr)) + "-" +
                         std::to_string(context_.next_session_id.load());
  Steps steps(emit, context_.metrics);
  replication::Manager manager(ControlPlane::replication_settings(config));
  auto run = std::make_shared<SwitchoverRun>(id, *config.green, config.server.connect_timeout);
  std::vector<std::shared_ptr<Session>> sessions;
  bool fenced = false;
  json::array stragglers;
  std::size_t sequences = 0;

  auto check_deadline = [&] {
    if (abort_requested_) throw StepFailure{steps.current(), "aborted by the operator"};
    if (Clock::now() > deadline) {
      throw StepFailure{
          steps.current(),
          "switchover timeout (" + std::to_string(options.timeout.count()) + " ms) passed"};
    }
  };
  // Waits in slices so that `abort` and the overall deadline are noticed promptly.
  auto wait_phase = [&](ParticipantPhase phase, Clock::time_point until) {
    until = std::min(until, deadline);
    for (;;) {
      auto late =
          run->wait_for(phase, std::min(until, Clock::now() + std::chrono::milliseconds(20)));
      if (late.empty() || Clock::now() >= until || abort_requested_) return late;
    }
  };
  auto failed_participants = [&] {
    std::string reasons;
    for (const auto& [sid, state] : run->snapshot()) {
      if (state.phase == ParticipantPhase::kFailed) {
        reasons +=
            (reasons.empty() ? "" : "; ") + ("c" + std::to_string(sid) + ": " + state.detail);
      }
    }
    return reasons;
  };
  auto session_by_id = [&](std::uint64_t sid) -> std::shared_ptr<Session> {
    for (auto& s : sessions) {
      if (s->id() == sid) return s;
    }
    return nullptr;
  };

  auto report = [&](std::string outcome, const std::string& failed_step,
                    const std::string& reason) {
    const auto participants = run->snapshot();
    std::size_t moved = 0, ended = 0, released = 0;
    std::vector<double> held;
    json::array ended_list;
    for (const auto& [sid, state] : participants) {
      if (state.phase == ParticipantPhase::kMoved) ++moved;
      if (state.phase == ParticipantPhase::kReleased) ++released;
      if (state.phase == ParticipantPhase::kEnded || state.phase == ParticipantPhase::kFailed) {
        ++ended;
        ended_list.push_back(json::object{
            {"session", sid}, {"phase", phase_name(state.phase)}, {"reason", state.detail}});
      }
      if (state.had_held_request) held.push_back(state.held_ms);
    }
    std::sort(held.begin(), held.end());
    const double max_held = held.empty() ? 0 : held.back();
    const double p99_held =
        held.empty() ? 0 : held[std::min(held.size() - 1, (held.size() * 99 + 99) / 100 - 1)];
    json::object result{{"switchover_id", id},
                        {"outcome", outcome},
                        {"failed_step", failed_step},
                        {"reason", reason},
                        {"total_ms", ms_since(start)},
                        {"steps", steps.list()},
                        {"sessions", json::object{{"total", participants.size()},
                                                  {"moved", moved},
                                                  {"released_to_blue", released},
                                                  {"ended", ended}}},
                        {"ended", ended_list},
                        {"stragglers", stragglers},
                        {"parked_clients", held.size()},
                        {"max_parked_ms", max_held},
                        {"p99_parked_ms", p99_held},
                        {"sequences_copied", sequences},
                        {"sentinel", id},
                        {"active", context_.router.active().name}};
    char summary[512];
    std::snprintf(summary, sizeof summary,
                  "switchover %s: %s in %.1f ms\nsessions: %zu total, %zu moved to green, %zu "
                  "released to blue, %zu ended\nclients parked: %zu, max %.1f ms, p99 %.1f ms\n"
                  "sequences copied: %zu, sentinel: %s\nactive environment: %s\n",
                  id.c_str(), outcome.c_str(), ms_since(start), participants.size(), moved,
                  released, ended, held.size(), max_held, p99_held, sequences, id.c_str(),
                  context_.router.active().name.c_str());
    std::string text = summary;
    if (!failed_step.empty()) text += "failed at step " + failed_step + ": " + reason + "\n";
    for (const auto& e : ended_list) {
      text += "  ended c" + json::serialize(e.as_object().at("session")) + ": " +
              std::string(e.as_object().at("reason").as_string()) + "\n";
    }
    return std::pair{std::move(result), std::move(text)};
  };

  // Before the commit point: unfence blue, release everyone to blue, say why.
  auto abort = [&](const std::string& step, const std::string& reason) {
    spdlog::warn("switchover {} aborted at {}: {}", id, step, reason);
    std::string cleanup_problem;
    if (fenced) {
      try {
        (void)manager.unfence();
      } catch (const std::exception& e) {
        cleanup_problem = std::string("; UNFENCE FAILED, blue may still be read-only: ") + e.what();
        spdlog::error("switchover {}: unfence failed: {}", id, e.what());
      }
    }
    for (auto& s : sessions) s->decide(SwitchoverDecision::kAbort);
    (void)run->wait_for(ParticipantPhase::kReleased, Clock::now() + std::chrono::seconds(5));
    context_.router.set_gate_closed(false);
    emit("step", "aborted at " + step + ": " + reason + "; blue serves on", nullptr);
    context_.metrics.switchover_run(abort_requested_ ? "aborted" : "failed");
    auto [result, text] = report("aborted", step, reason + cleanup_problem);
    return AdminReply::failure("switchover_aborted",
                               "aborted at " + step + ": " + reason + cleanup_problem,
                               std::move(result), std::move(text));
  };

  try {
    // 0. Guardrails: change nothing, fail fast.
    steps.begin("guardrails");
    {
      std::vector<std::string> problems;
      const auto status = manager.status();
      if (status.databases.empty()) problems.push_back("replication is not set up");
      for (const auto& db : status.databases) {
        const std::string where = "[" + db.database + "] ";
        if (db.state != "streaming") problems.push_back(where + "replication is " + db.state);
        if (db.tables_ready != db.tables_total) {
          problems.push_back(where + std::to_string(db.tables_total - db.tables_ready) +
                             " table(s) not synced");
        }
        if (db.lag_bytes && *db.lag_bytes > config.switchover.max_lag_bytes) {
          problems.push_back(where + "lag " + std::to_string(*db.lag_bytes) + " bytes > " +
                             std::to_string(config.switchover.max_lag_bytes));
        }
        if (db.lag_seconds &&
            *db.lag_seconds * 1000 > static_cast<double>(config.switchover.max_lag.count())) {
          problems.push_back(where + "lag " + std::to_string(*db.lag_seconds) + " s > max_lag_ms");
        }
        if (db.ddl_count > 0) {
          problems.push_back(where + std::to_string(db.ddl_count) +
                             " DDL command(s) ran on blue since init: apply them to green and "
                             "re-run replication init");
        }
      }
      const auto precheck = manager.precheck();
      for (const auto& row : precheck.rows) {
        if (row.level == replication::CheckLevel::kFail) {
          problems.push_back("[" + row.database + "] precheck " + row.check + ": " + row.detail);
        }
      }
      auto blue = replication::PgConnection::open(
          ControlPlane::replication_settings(config).blue, config.blue.admin_database,
          replication::ConnectOptions{"pgflip-switchover", config.server.connect_timeout,
                                      std::chrono::seconds(10)},
          "guardrails");
      const auto age = blue.exec(
          "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8 FROM "
          "pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' AND xact_start IS "
          "NOT NULL AND state <> 'idle' AND pid <> pg_catalog.pg_backend_pid()",
          "guardrails");
      const double oldest = age.float64(0, 0);
      if (oldest * 1000 > static_cast<double>(config.switchover.max_transaction_age.count())) {
        problems.push_back("a transaction on blue is " + std::to_string(oldest) +
                           " s old (switchover.max_transaction_age_ms)");
      }
      if (!problems.empty()) {
        std::string reason;
        for (const auto& p : problems) reason += (reason.empty() ? "" : "; ") + p;
        throw StepFailure{"guardrails", reason};
      }
      steps.end("lag, sync, DDL, precheck and transaction age within limits");
    }
    if (options.dry_run) {
      std::size_t live = 0;
      context_.sessions.for_each(
          [&](const std::shared_ptr<Session>& s) { live += !s->is_console(); });
      auto [result, text] = report("dry-run", "", "");
      text = "dry run: guardrails pass; a switchover would move " + std::to_string(live) +
             " session(s) to green (" + config.green->address() + ")\n";
      return AdminReply::success(std::move(result), std::move(text));
    }
    check_deadline();

    // 1. Catch up: while clients still run, write sentinels until green applies one within
    //    catchup_target_ms, so that parked clients wait only for the last few milliseconds of
    //    replication instead of whatever backlog green had. The connections stay open for the
    //    fence, the drain and the sequence copy: no logins while clients are parked.
    steps.begin("catchup");
    replication::SentinelWatch watch = manager.watch_sentinels();
    auto wait_for_sentinel = [&](Clock::time_point until) {
      for (;;) {
        const auto slice = std::min(until, Clock::now() + std::chrono::milliseconds(20));
        if (watch.wait_until(slice, kSentinelPoll)) return true;
        check_deadline();
        if (Clock::now() >= until) return false;
      }
    };
    {
      const auto& target = config.switchover.catchup_target;
      std::string detail = "skipped (switchover.catchup_timeout_ms = 0)";
      if (config.switchover.catchup_timeout.count() > 0) {
        const auto until = std::min(deadline, Clock::now() + config.switchover.catchup_timeout);
        for (int round = 1;; ++round) {
          watch.write(id + "/catchup-" + std::to_string(round));
          const std::string rounds = " after " + std::to_string(round) + " sentinel(s)";
          if (!wait_for_sentinel(until)) {
            detail = "green had not applied the last sentinel" + rounds +
                     " within catchup_timeout_ms; the drain waits for the rest";
            break;
          }
          const double ms = watch.result().seconds * 1000;
          const std::string took = "green applied a sentinel in " + format_ms(ms) + " ms";
          if (ms <= static_cast<double>(target.count())) {
            detail = took + rounds + " (catchup_target_ms " + std::to_string(target.count()) + ")";
            break;
          }
          if (Clock::now() >= until) {
            detail = took + rounds + ", still above catchup_target_ms " +
                     std::to_string(target.count()) + "; the drain waits for the rest";
            break;
          }
        }
      }
      steps.end(detail);
    }
    check_deadline();

    // 2. Pre-warm: hold new logins, then open one green connection per live session.
    steps.begin("prewarm");
    context_.router.set_gate_closed(true);
    const auto logins_deadline = Clock::now() + config.server.connect_timeout;
    while (context_.logins_in_flight.load() > 0 &&
           Clock::now() < std::min(logins_deadline, deadline)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Admin console sessions have no server connection to move.
    context_.sessions.for_each([&](const std::shared_ptr<Session>& s) {
      if (!s->is_console()) sessions.push_back(s);
    });
    for (auto& s : sessions) run->join(s->id());
    for (auto& s : sessions) s->join_switchover(run);
    auto late = wait_phase(ParticipantPhase::kPrewarmed, deadline);
    if (!late.empty())
      throw StepFailure{"prewarm", std::to_string(late.size()) + " green login(s) did not finish"};
    if (auto failed = failed_participants(); !failed.empty()) throw StepFailure{"prewarm", failed};
    steps.end(std::to_string(sessions.size()) + " green connection(s) ready");
    check_deadline();

    // 3. Park every client at its next transaction boundary.
    steps.begin("park");
    for (auto& s : sessions) s->decide(SwitchoverDecision::kPark);
    late = wait_phase(ParticipantPhase::kParked, Clock::now() + options.drain_timeout);
    if (abort_requested_) check_deadline();
    if (!late.empty()) {
      for (auto sid : late) stragglers.push_back(sid);
      if (options.on_straggler == config::StragglerPolicy::kAbort) {
        throw StepFailure{"park", std::to_string(late.size()) +
                                      " session(s) still in a transaction after drain timeout "
                                      "(on_straggler = abort)"};
      }
      for (auto sid : late) {
        if (auto s = session_by_id(sid)) {
          s->decide(SwitchoverDecision::kTerminate,
                    "terminating connection: its transaction was still open when pgflip switched "
                    "over to green (switchover.on_straggler = cancel); the transaction was rolled "
                    "back");
        }
      }
      wait_phase(ParticipantPhase::kParked, Clock::now() + std::chrono::seconds(2));
    }
    if (auto failed = failed_participants(); !failed.empty()) throw StepFailure{"park", failed};
    std::vector<int> keep;
    std::size_t unmovable = 0;
    for (const auto& [sid, state] : run->snapshot()) {
      if (state.blue_pid) keep.push_back(state.blue_pid);
      if (!state.unmovable.empty() && state.phase == ParticipantPhase::kParked) ++unmovable;
    }
    if (unmovable > 0 && config.switchover.unmovable_sessions == config::UnmovablePolicy::kAbort) {
      throw StepFailure{"park", std::to_string(unmovable) +
                                    " session(s) hold temp tables or WITH HOLD cursors "
                                    "(switchover.unmovable_sessions = abort)"};
    }
    steps.end(std::to_string(sessions.size() - late.size()) + " parked, " +
              std::to_string(late.size()) + " straggler(s), " + std::to_string(unmovable) +
              " unmovable");
    check_deadline();

    // 4. Fence blue against writers that bypass pgflip.
    steps.begin("fence");
    replication::FenceOptions fence;
    fence.terminate_backends = config.switchover.terminate_blue_backends;
    fence.keep_pids = keep;
    fence.label = id;
    fence.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    fenced = true;  // from here an abort must unfence, even if fence() failed halfway
    const auto fence_result = manager.fence(fence, watch);
    steps.end("default_transaction_read_only = on; " +
              std::to_string(fence_result.terminated.size()) + " other backend(s) terminated");
    check_deadline();

    // 5. Drain: when green shows a sentinel written after the fence, it has applied
    //    everything. Waited for in slices so that `abort` is noticed promptly.
    steps.begin("drain");
    watch.write(id);
    if (!wait_for_sentinel(std::min(deadline, Clock::now() + config.switchover.sentinel_timeout))) {
      throw StepFailure{
          "drain", "green did not apply sentinel " + id + " within " +
                       std::to_string(config.switchover.sentinel_timeout.count()) +
                       " ms (switchover.sentinel_timeout_ms; behind: " + watch.missing() + ")"};
    }
    const auto sentinel = watch.result();
    steps.end("sentinel " + id + " applied on green " + format_ms(sentinel.seconds * 1000) +
              " ms after its commit on blue");
    check_deadline();

    // 6. Sequences, read after the fence so no value can move on.
    steps.begin("sequences");
    const auto copied = manager.copy_sequences(watch);
    sequences = copied.count();
    steps.end(std::to_string(sequences) + " sequence(s) set on green");
    check_deadline();

    // 6. The commit point: durable before any client sees green.
    steps.begin("commit");
    const auto previous = context_.router.active();
    store_active_state(config.switchover.state_file,
                       ActiveState{"green", previous.epoch + 1, id, utc_now()});
    committed_ = true;
    context_.router.set_active(Router::Active{"green", *config.green, previous.epoch + 1});
    steps.end("state file " + config.switchover.state_file + " says green (epoch " +
              std::to_string(previous.epoch + 1) + ")");
  } catch (const StepFailure& failure) {
    return abort(failure.step, failure.reason);
  } catch (const std::exception& error) {
    return abort(steps.current(), error.what());
  }

  // 7. Flip: every parked session replays its state on green and is released there.
  steps.begin("flip");
  for (auto& s : sessions) s->decide(SwitchoverDecision::kCommit);
  auto late = run->wait_for(ParticipantPhase::kMoved, Clock::now() + std::chrono::seconds(30));
  context_.router.set_gate_closed(false);
  std::size_t moved = 0;
  for (const auto& [sid, state] : run->snapshot()) moved += state.phase == ParticipantPhase::kMoved;
  steps.end(std::to_string(moved) + " session(s) moved" +
            (late.empty() ? "" : ", " + std::to_string(late.size()) + " did not answer in 30 s"));

  // 8. After: the forward replication is no longer needed; blue stays fenced, now "old".
  steps.begin("cleanup");
  std::string cleanup_note = "subscription, slot and publication dropped; blue stays fenced (old)";
  try {
    (void)manager.cleanup();
  } catch (const std::exception& e) {
    cleanup_note =
        std::string("replication cleanup failed (run 'pgflipctl replication cleanup'): ") +
        e.what();
    spdlog::error("switchover {}: {}", id, cleanup_note);
  }
  steps.end(cleanup_note);
  auto [result, text] = report("committed", "", "");
  context_.metrics.switchover_run("committed");
  spdlog::info("switchover {} committed: green is active", id);
  return AdminReply::success(std::move(result), std::move(text));
}

}  // namespace pgflip::proxy
