// Runs switchovers for the daemon: the state machine wired to the replication manager (libpq)
// and to the live sessions; recovery of the active environment at start-up.
#include "proxy/control/switchover.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <ctime>
#include <thread>
#include <tuple>

#include "proxy/control/guardrails.hpp"
#include "proxy/control/replication_settings.hpp"
#include "proxy/control/state_store.hpp"
#include "proxy/control/switchover_history.hpp"
#include "proxy/session/session.hpp"
#include "replication/error.hpp"
#include "replication/manager.hpp"

namespace pgflip::proxy {

namespace {

/// How often green is asked whether a sentinel has arrived (one indexed lookup each).
constexpr std::chrono::milliseconds kSentinelPoll{2};

/// The replication steps over replication::Manager; catchup to sequences share the sentinel
/// watch's open connections.
class ManagerServers final : public SwitchoverServers {
 public:
  explicit ManagerServers(const config::Config& config)
      : config_(config), manager_(replication_settings(config)) {}

  std::vector<std::string> guardrail_problems() override {
    using Side = replication::Manager::Side;
    // Both servers must answer first: everything else is read from them, and the commit
    // records their identities.
    std::vector<std::string> problems;
    Identities ids{configured_identity(config_.blue), configured_identity(*config_.green)};
    for (auto [side, name, endpoint, identity] :
         {std::tuple{Side::kBlue, "blue", &config_.blue, &ids.blue},
          std::tuple{Side::kGreen, "green", &*config_.green, &ids.green}}) {
      try {
        identity->system_identifier = manager_.system_identifier(side);
      } catch (const replication::ReplicationError& e) {
        if (e.kind() != replication::ErrorKind::kConnection) throw;
        problems.push_back(unreachable_problem(name, *endpoint, e.server_message()));
      }
    }
    if (!problems.empty()) return problems;
    identities_ = std::move(ids);  // what the commit records

    GuardrailFindings findings;
    findings.status = manager_.status();
    findings.precheck = manager_.precheck().rows;
    auto blue = replication::PgConnection::open(
        manager_.settings().blue, config_.blue.admin_database,
        replication::ConnectOptions{"pgflip-switchover", config_.server.connect_timeout,
                                    std::chrono::seconds(10)},
        "guardrails");
    // Idle in transaction counts: it holds its snapshot and locks as long as it stays open.
    const auto oldest = blue.exec(
        "SELECT extract(epoch FROM now() - xact_start)::float8, pid, coalesce(usename, ''), "
        "coalesce(datname, ''), coalesce(application_name, '') FROM pg_catalog.pg_stat_activity "
        "WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND state <> 'idle' "
        "AND pid <> pg_catalog.pg_backend_pid() ORDER BY xact_start LIMIT 1",
        "guardrails");
    if (oldest.rows() > 0) {
      findings.oldest_transaction =
          OldestTransaction{oldest.float64(0, 0), static_cast<int>(oldest.int64(0, 1)),
                            oldest.text(0, 2), oldest.text(0, 3), oldest.text(0, 4)};
    }
    return proxy::guardrail_problems(findings, config_.switchover);
  }

  void open() override { watch_.emplace(manager_.watch_sentinels()); }
  void write_sentinel(std::string_view label) override { watch_->write(label); }
  bool sentinel_applied(Clock::time_point until) override {
    return watch_->wait_until(until, kSentinelPoll);
  }
  [[nodiscard]] double sentinel_ms() const override { return watch_->result().seconds * 1000; }
  [[nodiscard]] std::string sentinel_missing() const override { return watch_->missing(); }

  std::size_t fence(const std::vector<int>& keep_pids, const std::string& label,
                    std::chrono::milliseconds timeout) override {
    replication::FenceOptions options;
    options.terminate_backends = config_.switchover.terminate_blue_backends;
    options.keep_pids = keep_pids;
    options.label = label;
    options.timeout = timeout;
    return manager_.fence(options, *watch_).terminated.size();
  }
  void unfence() override { (void)manager_.unfence(); }
  std::size_t copy_sequences() override { return manager_.copy_sequences(*watch_).count(); }
  void cleanup() override { (void)manager_.cleanup(); }

  /// Both servers' identities, read by the guardrails (before anyone is parked).
  [[nodiscard]] const std::optional<Identities>& identities() const { return identities_; }

 private:
  const config::Config& config_;
  replication::Manager manager_;
  std::optional<Identities> identities_;
  std::optional<replication::SentinelWatch> watch_;
};

/// The live sessions of this pgflip, and its login gate.
class SessionFleet final : public SwitchoverFleet {
 public:
  explicit SessionFleet(ProxyContext& context) : context_(context) {}

  void hold_logins(bool hold) override {
    if (hold) {
      context_.login_gate.close();
    } else {
      context_.login_gate.open();
    }
  }

  void wait_for_logins(Clock::time_point deadline) override {
    (void)context_.login_gate.wait_clear(deadline);
  }

  std::vector<std::shared_ptr<SwitchoverParticipant>> participants() override {
    std::vector<std::shared_ptr<SwitchoverParticipant>> list;
    context_.sessions.for_each([&](const std::shared_ptr<Session>& s) {
      if (!s->is_console()) list.push_back(s);
    });
    return list;
  }

 private:
  ProxyContext& context_;
};

/// The one log line that sums a run up: "switchover so-1-2 committed: 812.4 ms in all, clients
/// held 231.0 ms; sessions 16 moved, 0 released to blue, 0 ended".
std::string summary_line(const SwitchoverReport& r) {
  char numbers[200];
  std::snprintf(numbers, sizeof numbers,
                "%.1f ms in all, clients held %.1f ms; sessions %zu moved, %zu released to blue, "
                "%zu ended",
                r.total_ms, r.window_ms, r.moved, r.released, r.ended.size());
  return "switchover " + r.id + " " + outcome_summary(r) + ": " + numbers +
         (r.reason.empty() ? "" : "; reason: " + r.reason);
}

/// Logs the run in one line and keeps its report in the history (a dry run changes nothing
/// and is only logged). A history that cannot be written is logged, never fatal: the
/// switchover's outcome is the state file's, not the history's.
void record(const SwitchoverReport& report, const std::string& state_file, bool dry_run) {
  const std::string line = summary_line(report);
  if (report.outcome == SwitchoverOutcome::kCommitted || dry_run) {
    spdlog::info("{}", line);
  } else {
    spdlog::warn("{}", line);
  }
  if (dry_run) return;
  const std::string path = history_path(state_file);
  try {
    append_history(path, report);
  } catch (const std::exception& e) {
    spdlog::error("switchover {}: its report is not kept in the history: {}; check the disk",
                  report.id, e.what());
  }
}

}  // namespace

bool Switchover::request_abort() {
  std::lock_guard lock(machine_mutex_);
  return machine_ != nullptr && machine_->request_abort();
}

void Switchover::recover() {
  const auto snapshot = context_.config();
  const auto& config = *snapshot;
  const auto state = load_verified_state(config);  // refuses another deployment's file
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
    replication::Manager manager(replication_settings(config));
    if (manager.fence_state().recorded) {
      const auto result = manager.unfence();
      spdlog::warn("recovered from an interrupted switchover: blue unfenced ({:.3f}s)",
                   result.seconds);
    }
  } catch (const std::exception& e) {
    spdlog::error("could not check blue's fence at start-up: {}", e.what());
  }
}

std::variant<SwitchoverReport, SwitchoverRefusal> Switchover::run(
    const SwitchoverOptions& options, const SwitchoverObserver& observer) {
  // The whole run uses the configuration it started with, whatever a reload does meanwhile.
  const auto config = context_.config();
  auto refuse = [](std::string code, std::string message) {
    spdlog::warn("switchover refused ({}), nothing changed: {}", code, message);
    return SwitchoverRefusal{std::move(code), std::move(message)};
  };
  if (!config->green) return refuse("config", "no [green] is configured");
  if (context_.router.active().name == "green") {
    return refuse("state", "green is already active; a switchover only rolls forward");
  }
  bool expected = false;
  if (!running_.compare_exchange_strong(expected, true)) {
    return refuse("busy", "a switchover is already running");
  }
  struct Reset {
    std::atomic<bool>& flag;
    ~Reset() { flag = false; }
  } reset{running_};

  const std::string id = "so-" + std::to_string(std::time(nullptr)) + "-" +
                         std::to_string(context_.next_session_id.load());
  const std::string path = config->switchover.state_file;
  ManagerServers servers(*config);
  SwitchoverStateFile state_file{[path, &servers](ActiveState state) {
                                   // The file says which blue and green it speaks of.
                                   if (const auto& ids = servers.identities()) {
                                     state.blue = ids->blue;
                                     state.green = ids->green;
                                   }
                                   return store_active_state(path, state);
                                 },
                                 [path] { return load_active_state(path); }};
  SwitchoverObserver observed{[&](const StepRecord& step) {
                                context_.metrics.switchover_step(
                                    std::string(step_name(step.step)),
                                    std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::duration<double, std::milli>(step.ms)));
                                if (observer.step_done) observer.step_done(step);
                              },
                              observer.rolled_back};
  SessionFleet fleet(context_);
  SwitchoverMachine machine(id, config, options, servers, fleet, context_.router,
                            std::move(state_file), std::move(observed));
  {
    std::lock_guard lock(machine_mutex_);
    machine_ = &machine;
  }
  SwitchoverReport report = machine.run();
  {
    std::lock_guard lock(machine_mutex_);
    machine_ = nullptr;
  }
  record(report, path, options.dry_run);
  if (report.outcome != SwitchoverOutcome::kDryRun) {
    context_.metrics.switchover_run(report.outcome == SwitchoverOutcome::kCommitted ? "committed"
                                    : report.operator_abort                         ? "aborted"
                                                                                    : "failed");
  }
  return report;
}

}  // namespace pgflip::proxy
