// The switchover state machine against fake servers and fake sessions: every step failing,
// deadlines, an operator's abort at every step, and abort racing the commit point.
#include "proxy/control/switchover_machine.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

using namespace pgflip::proxy;
namespace config = pgflip::config;
using namespace std::chrono_literals;

namespace {

/// Servers that do what the test says; `on` runs a hook as a call begins (to fail it, or to
/// abort the run from inside a step).
struct FakeServers final : SwitchoverServers {
  std::vector<std::string> problems;
  bool sentinel_arrives = true;
  std::map<std::string, int> calls;
  std::map<std::string, std::function<void()>> on;
  bool fenced = false;

  void hit(const std::string& name) {
    ++calls[name];
    if (auto it = on.find(name); it != on.end()) it->second();
  }
  std::vector<std::string> guardrail_problems() override {
    hit("guardrails");
    return problems;
  }
  void open() override { hit("open"); }
  void write_sentinel(std::string_view label) override {
    hit(std::string(label).find("/catchup-") != std::string::npos ? "catchup" : "drain");
  }
  bool sentinel_applied(Clock::time_point until) override {
    if (sentinel_arrives) return true;
    std::this_thread::sleep_until(until);
    return false;
  }
  double sentinel_ms() const override { return 1.5; }
  std::string sentinel_missing() const override { return "app"; }
  std::size_t fence(const std::vector<int>&, const std::string&,
                    std::chrono::milliseconds) override {
    fenced = true;  // set first: a fence that fails halfway must still be undone
    hit("fence");
    return 2;
  }
  void unfence() override {
    hit("unfence");
    fenced = false;
  }
  std::size_t copy_sequences() override {
    hit("sequences");
    return 3;
  }
  void cleanup() override { hit("cleanup"); }
};

/// A session that answers every decision at once, or fails where told.
struct FakeSession final : SwitchoverParticipant, std::enable_shared_from_this<FakeSession> {
  explicit FakeSession(std::uint64_t id) : id_(id) {}
  ~FakeSession() override {
    if (login_.joinable()) login_.join();
  }
  std::uint64_t id() const override { return id_; }
  void join_switchover(std::shared_ptr<SwitchoverRun> run) override {
    run_ = std::move(run);
    if (logins_in_flight != nullptr) {  // a green login on a thread of its own, taking a while
      const int now = ++*logins_in_flight;
      for (int seen = most_in_flight->load();
           now > seen && !most_in_flight->compare_exchange_weak(seen, now);) {
      }
      login_ = std::thread([this] {
        std::this_thread::sleep_for(2ms);
        --*logins_in_flight;
        run_->report(id_, ParticipantPhase::kPrewarmed);
      });
      return;
    }
    if (hang_prewarm) return;
    if (fail_prewarm) {
      run_->report(id_, ParticipantPhase::kFailed, "green login refused");
    } else {
      run_->report(id_, ParticipantPhase::kPrewarmed);
    }
  }
  void decide(SwitchoverDecision decision, std::string) override {
    std::lock_guard lock(mutex_);
    decisions.push_back(decision);
    if (ended_) return;  // as a real session: its part ended with it
    switch (decision) {
      case SwitchoverDecision::kPark:
        if (fail_park) {
          run_->report(id_, ParticipantPhase::kFailed, "state capture failed");
        } else if (!in_transaction) {
          run_->report(id_, ParticipantPhase::kParked);
        }
        break;
      case SwitchoverDecision::kCommit:
        run_->report(id_, ParticipantPhase::kMoved);
        break;
      case SwitchoverDecision::kAbort:
        run_->report(id_, ParticipantPhase::kReleased);
        break;
      case SwitchoverDecision::kTerminate:
        run_->report(id_, ParticipantPhase::kEnded, "terminated");
        ended_ = true;
        break;
    }
  }
  bool fail_prewarm = false;
  bool hang_prewarm = false;  // never reports its green login
  bool fail_park = false;
  bool in_transaction = false;  // never reaches a boundary
  std::vector<SwitchoverDecision> decisions;
  std::atomic<int>* logins_in_flight = nullptr;  // set: log in slowly, counting
  std::atomic<int>* most_in_flight = nullptr;

 private:
  const std::uint64_t id_;
  std::shared_ptr<SwitchoverRun> run_;
  std::mutex mutex_;
  bool ended_ = false;
  std::thread login_;
};

struct FakeFleet final : SwitchoverFleet {
  std::vector<std::shared_ptr<FakeSession>> sessions;
  std::atomic<bool> holding{false};
  int held = 0;
  void hold_logins(bool hold) override {
    holding = hold;
    held += hold;
  }
  void wait_for_logins(Clock::time_point) override {}
  std::vector<std::shared_ptr<SwitchoverParticipant>> participants() override {
    return {sessions.begin(), sessions.end()};
  }
};

std::shared_ptr<const config::Config> test_config(const std::string& extra = {}) {
  return std::make_shared<const config::Config>(config::parse_config(
      "[blue]\nhost = \"blue.internal\"\n[green]\nhost = \"green.internal\"\n"
      "[switchover]\nstate_file = \"/nonexistent/state.json\"\ncatchup_timeout_ms = 1000\n" +
          extra,
      "test.toml"));
}

struct Harness {
  explicit Harness(std::size_t sessions = 3, const std::string& extra = {},
                   SwitchoverOptions options = {5000ms, 1000ms, config::StragglerPolicy::kAbort,
                                                false})
      : config(test_config(extra)), options(options) {
    router.set_active(Router::Active{"blue", config->blue, 4});
    for (std::size_t i = 0; i < sessions; ++i) {
      fleet.sessions.push_back(std::make_shared<FakeSession>(i + 1));
    }
  }

  SwitchoverMachine& make() {
    machine.emplace("so-test", config, options, servers, fleet, router,
                    SwitchoverStateFile{[this](const ActiveState& s) {
                                          if (store_fails) throw std::runtime_error("disk full");
                                          stored = s;
                                          if (store_fails_after_rename) {
                                            throw std::runtime_error("cannot fsync directory");
                                          }
                                          return store_note;
                                        },
                                        [this] { return stored; }},
                    SwitchoverObserver{[this](const StepRecord& r) { steps.push_back(r.step); },
                                       [this](const std::string& text) { rolled_back = text; }});
    return *machine;
  }
  SwitchoverReport run() { return make().run(); }

  std::shared_ptr<const config::Config> config;
  SwitchoverOptions options;
  FakeServers servers;
  FakeFleet fleet;
  Router router;
  std::optional<SwitchoverMachine> machine;
  std::optional<ActiveState> stored;
  bool store_fails = false;
  bool store_fails_after_rename = false;
  std::string store_note;  // what store() says of the file's durability
  std::vector<Step> steps;
  std::string rolled_back;
};

void check_rolled_back(const Harness& h, const SwitchoverReport& r, Step at) {
  CHECK(r.outcome == SwitchoverOutcome::kAborted);
  REQUIRE(r.failed_step.has_value());
  CHECK(step_name(*r.failed_step) == step_name(at));
  CHECK(h.router.active().name == "blue");
  CHECK(h.router.active().epoch == 4);
  CHECK_FALSE(h.stored.has_value());
  CHECK_FALSE(h.servers.fenced);
  CHECK_FALSE(h.fleet.holding.load());  // the login gate is open again
  CHECK(h.rolled_back.find("aborted at " + std::string(step_name(at))) == 0);
  for (const auto& s : h.fleet.sessions) {
    const bool joined = at >= Step::kPrewarm;
    CHECK(!s->decisions.empty() == joined);
    if (joined) CHECK(s->decisions.back() == SwitchoverDecision::kAbort);
  }
  // The fence is undone exactly when the run reached it.
  CHECK((h.servers.calls.count("unfence") > 0) == (at >= Step::kFence));
}

}  // namespace

TEST_CASE("the step table is in the README's order, and the transition runs it in that order") {
  for (std::size_t i = 0; i < kSteps.size(); ++i)
    CHECK(static_cast<std::size_t>(kSteps[i].step) == i);
  Harness h;
  const auto r = h.run();
  CHECK(r.outcome == SwitchoverOutcome::kCommitted);
  REQUIRE(h.steps.size() == kStepCount);
  for (std::size_t i = 0; i < kStepCount; ++i) CHECK(h.steps[i] == kSteps[i].step);
  CHECK(r.steps.size() == kStepCount);
  CHECK(h.router.active().name == "green");
  CHECK(h.router.active().epoch == 5);
  REQUIRE(h.stored.has_value());
  CHECK(h.stored->active == "green");
  CHECK(h.stored->epoch == 5);
  CHECK(r.moved == 3);
  CHECK(r.sequences == 3);
  CHECK(h.servers.calls["unfence"] == 0);
  CHECK(h.servers.calls["cleanup"] == 1);
  CHECK_FALSE(h.fleet.holding.load());
  CHECK(step_name(Step::kCleanup) == "cleanup");
}

TEST_CASE("a dry run runs the guardrails only and changes nothing") {
  Harness h(2, {}, {5000ms, 1000ms, config::StragglerPolicy::kAbort, true});
  const auto r = h.run();
  CHECK(r.outcome == SwitchoverOutcome::kDryRun);
  CHECK(r.sessions == 2);
  CHECK(h.steps == std::vector<Step>{Step::kGuardrails});
  CHECK(h.fleet.held == 0);
  CHECK(h.fleet.sessions[0]->decisions.empty());
  CHECK_FALSE(h.stored.has_value());
}

TEST_CASE("a failure at each step before the commit point rolls back what was reached") {
  struct Case {
    Step step;
    std::function<void(Harness&)> arrange;
    std::string reason;
  };
  const std::vector<Case> cases{
      {Step::kGuardrails, [](Harness& h) { h.servers.problems = {"[app] lag 9 s > max_lag_ms"}; },
       "lag 9 s"},
      {Step::kCatchup,
       [](Harness& h) { h.servers.on["catchup"] = [] { throw std::runtime_error("blue gone"); }; },
       "blue gone"},
      {Step::kPrewarm, [](Harness& h) { h.fleet.sessions[1]->fail_prewarm = true; },
       "green login refused"},
      {Step::kPark, [](Harness& h) { h.fleet.sessions[2]->fail_park = true; },
       "state capture failed"},
      {Step::kFence,
       [](Harness& h) { h.servers.on["fence"] = [] { throw std::runtime_error("no superuser"); }; },
       "no superuser"},
      {Step::kDrain,
       [](Harness& h) { h.servers.on["drain"] = [&h] { h.servers.sentinel_arrives = false; }; },
       "did not apply sentinel"},
      {Step::kSequences,
       [](Harness& h) {
         h.servers.on["sequences"] = [] { throw std::runtime_error("setval failed"); };
       },
       "setval failed"},
      {Step::kCommit, [](Harness& h) { h.store_fails = true; }, "disk full"},
  };
  for (const auto& c : cases) {
    CAPTURE(step_name(c.step));
    Harness h(3, "sentinel_timeout_ms = 30\n");
    c.arrange(h);
    const auto r = h.run();
    check_rolled_back(h, r, c.step);
    CHECK(r.reason.find(c.reason) != std::string::npos);
    CHECK_FALSE(r.operator_abort);
    CHECK(h.servers.calls["cleanup"] == 0);
  }
}

TEST_CASE("an operator's abort during each step before the commit point rolls back there") {
  // Each hook runs inside the step named: the abort lands while that step works.
  const std::vector<std::pair<Step, std::string>> hooks{
      {Step::kGuardrails, "guardrails"}, {Step::kCatchup, "catchup"},     {Step::kFence, "fence"},
      {Step::kDrain, "drain"},           {Step::kSequences, "sequences"},
  };
  for (const auto& [step, hook] : hooks) {
    CAPTURE(hook);
    Harness h;
    h.servers.on[hook] = [&h] { CHECK(h.machine->request_abort()); };
    const auto r = h.run();
    check_rolled_back(h, r, step);
    CHECK(r.operator_abort);
    CHECK(r.reason == "aborted by the operator");
  }
  SUBCASE("while sessions are parking") {
    Harness h;
    h.fleet.sessions[0]->in_transaction = true;
    std::thread aborter([&h] {
      while (!h.fleet.holding.load()) std::this_thread::sleep_for(1ms);
      while (!h.machine->request_abort()) std::this_thread::sleep_for(1ms);
    });
    const auto r = h.run();
    aborter.join();
    check_rolled_back(h, r, Step::kPark);
    CHECK(r.operator_abort);
  }
}

TEST_CASE("deadlines: stragglers past drain_timeout_ms, and the run's own timeout") {
  SUBCASE("a session still in a transaction aborts under on_straggler = abort") {
    Harness h(3, {}, {5000ms, 20ms, config::StragglerPolicy::kAbort, false});
    h.fleet.sessions[1]->in_transaction = true;
    const auto r = h.run();
    check_rolled_back(h, r, Step::kPark);
    CHECK(r.stragglers == std::vector<std::uint64_t>{2});
    CHECK(r.reason.find("still in a transaction after drain timeout") != std::string::npos);
  }
  SUBCASE("under on_straggler = cancel it is terminated and the rest move") {
    Harness h(3, {}, {5000ms, 20ms, config::StragglerPolicy::kCancel, false});
    h.fleet.sessions[1]->in_transaction = true;
    const auto r = h.run();
    CHECK(r.outcome == SwitchoverOutcome::kCommitted);
    CHECK(r.moved == 2);
    REQUIRE(r.ended.size() == 1);
    CHECK(r.ended[0].session == 2);
    CHECK(h.fleet.sessions[1]->decisions[1] == SwitchoverDecision::kTerminate);
  }
  SUBCASE("the run's timeout passes while green lags") {
    Harness h(1, "sentinel_timeout_ms = 60000\n",
              {60ms, 1000ms, config::StragglerPolicy::kAbort, false});
    h.servers.on["drain"] = [&h] { h.servers.sentinel_arrives = false; };
    const auto r = h.run();
    check_rolled_back(h, r, Step::kDrain);
    CHECK(r.reason.find("switchover timeout (60 ms) passed") != std::string::npos);
  }
}

TEST_CASE("past the commit point the run only rolls forward") {
  SUBCASE("an abort is refused once committed") {
    Harness h;
    bool accepted = true;
    h.servers.on["cleanup"] = [&] { accepted = h.machine->request_abort(); };
    const auto r = h.run();
    CHECK_FALSE(accepted);
    CHECK(r.outcome == SwitchoverOutcome::kCommitted);
  }
  SUBCASE("a failed cleanup is reported, not undone") {
    Harness h;
    h.servers.on["cleanup"] = [] { throw std::runtime_error("slot in use"); };
    const auto r = h.run();
    CHECK(r.outcome == SwitchoverOutcome::kCommitted);
    CHECK(r.steps.back().detail.find("replication cleanup failed") == 0);
    CHECK(h.router.active().name == "green");
  }
  SUBCASE("a store whose durability is in doubt rolls forward and says so") {
    Harness h;
    h.store_note = "directory fsync failed: check the disk";
    const auto r = h.run();
    CHECK(r.outcome == SwitchoverOutcome::kCommitted);
    REQUIRE(r.steps.size() == kStepCount);
    CHECK(r.steps[static_cast<std::size_t>(Step::kCommit)].detail.find(h.store_note) !=
          std::string::npos);
  }
  SUBCASE("a store that failed after its rename rolls forward: the file already says green") {
    Harness h;
    h.store_fails_after_rename = true;
    const auto r = h.run();
    CHECK(r.outcome == SwitchoverOutcome::kCommitted);
    CHECK(h.servers.calls["unfence"] == 0);
    CHECK(h.router.active().name == "green");
  }
}

TEST_CASE("abort against commit: an accepted abort always rolls back, a refused one commits") {
  // The abort lands around the commit point (from the sequence copy, the step before it, to
  // after the run); whatever the interleaving, request_abort() answers true exactly when the
  // run rolls back, and a rolled-back run never wrote the state file.
  int aborted = 0, committed = 0;
  for (int i = 0; i < 400; ++i) {
    Harness h(2);
    h.make();
    std::atomic<bool> near_commit{false};
    h.servers.on["sequences"] = [&] {
      near_commit = true;
      std::this_thread::sleep_for(std::chrono::microseconds((i * 53) % 400));
    };
    bool accepted = false;
    std::thread aborter([&] {
      while (!near_commit.load()) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds((i * 37) % 400));
      accepted = h.machine->request_abort();
    });
    const auto r = h.machine->run();
    aborter.join();
    CAPTURE(i);
    CHECK(accepted == (r.outcome == SwitchoverOutcome::kAborted));
    CHECK(accepted == !h.stored.has_value());
    CHECK((h.router.active().name == "green") == !accepted);
    (accepted ? aborted : committed) += 1;
  }
  MESSAGE("abort won " << aborted << " times, commit " << committed);
}

TEST_CASE("prewarm keeps at most prewarm_concurrency green logins in flight, and all finish") {
  Harness h(40, "prewarm_concurrency = 3\n");
  std::atomic<int> in_flight{0}, most{0};
  for (auto& s : h.fleet.sessions) {
    s->logins_in_flight = &in_flight;
    s->most_in_flight = &most;
  }
  const auto r = h.run();
  CHECK(r.outcome == SwitchoverOutcome::kCommitted);
  CHECK(r.moved == 40);
  CHECK(most.load() <= 3);
  CHECK(most.load() >= 1);
}

TEST_CASE("a prewarm stuck behind its concurrency bound rolls back only the sessions that joined") {
  Harness h(6, "prewarm_concurrency = 1\n",
            SwitchoverOptions{300ms, 1000ms, config::StragglerPolicy::kAbort, false});
  h.fleet.sessions[0]->hang_prewarm = true;  // its green login never answers
  const auto r = h.run();
  CHECK(r.outcome == SwitchoverOutcome::kAborted);
  REQUIRE(r.failed_step.has_value());
  CHECK(*r.failed_step == Step::kPrewarm);
  CHECK(r.reason.find("6 green login(s) did not finish") != std::string::npos);
  CHECK(h.fleet.sessions[0]->decisions == std::vector{SwitchoverDecision::kAbort});
  for (std::size_t i = 1; i < h.fleet.sessions.size(); ++i) {
    CHECK(h.fleet.sessions[i]->decisions.empty());  // never asked to join: nothing to end
  }
  CHECK_FALSE(h.fleet.holding.load());
  // The ones never asked count as released (they never left blue): the rollback has no
  // answer to wait for from them.
  CHECK(r.sessions == 6);
  CHECK(r.released == 6);
}
