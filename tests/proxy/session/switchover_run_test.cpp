// SwitchoverRun: the orchestrator's wait counts the sessions short of a phase, wakes on each
// report, and names the late ones.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <thread>
#include <vector>

#include "proxy/session/switchover_run.hpp"

using namespace pgflip::proxy;
using namespace std::chrono_literals;

namespace {
SwitchoverRun make_run() { return SwitchoverRun("so-test", pgflip::config::Endpoint{}, 1s); }
auto soon() { return std::chrono::steady_clock::now() + 1ms; }
}  // namespace

TEST_CASE("wait_for returns the sessions short of the phase; failed and ended count as done") {
  auto run = make_run();
  for (std::uint64_t id : {1, 2, 3, 4}) run.join(id);
  CHECK(run.wait_for(ParticipantPhase::kPrewarmed, soon()) ==
        std::vector<std::uint64_t>{1, 2, 3, 4});
  run.report(1, ParticipantPhase::kPrewarmed);
  run.report(2, ParticipantPhase::kFailed, "green login failed");
  run.report(3, ParticipantPhase::kEnded, "client disconnected");
  CHECK(run.wait_for(ParticipantPhase::kPrewarmed, soon()) == std::vector<std::uint64_t>{4});
  CHECK(run.wait_for(ParticipantPhase::kParked, soon()) == std::vector<std::uint64_t>{1, 4});
  run.report(4, ParticipantPhase::kParked);
  run.report(1, ParticipantPhase::kParked);
  CHECK(run.wait_for(ParticipantPhase::kParked, soon()).empty());
  const auto snapshot = run.snapshot();
  CHECK(snapshot.at(2).detail == "green login failed");
  CHECK(snapshot.at(1).parked_at != std::chrono::steady_clock::time_point{});
}

TEST_CASE("update changes a record but never its phase, and joining twice counts once") {
  auto run = make_run();
  run.join(7);
  run.join(7);
  run.update(7, [](ParticipantState& s) {
    s.blue_pid = 4242;
    s.phase = ParticipantPhase::kMoved;  // ignored: only report() moves a session on
  });
  CHECK(run.snapshot().at(7).blue_pid == 4242);
  CHECK(run.snapshot().at(7).phase == ParticipantPhase::kJoined);
  CHECK(run.wait_for(ParticipantPhase::kPrewarmed, soon()) == std::vector<std::uint64_t>{7});
  run.report(7, ParticipantPhase::kPrewarmed);
  CHECK(run.wait_for(ParticipantPhase::kPrewarmed, soon()).empty());
}

TEST_CASE("a waiting orchestrator wakes when the last of many sessions reports") {
  auto run = make_run();
  constexpr std::uint64_t kSessions = 1000;
  for (std::uint64_t id = 0; id < kSessions; ++id) run.join(id);
  auto waited = std::async(std::launch::async, [&] {
    return run.wait_for(ParticipantPhase::kParked, std::chrono::steady_clock::now() + 60s);
  });
  std::vector<std::thread> sessions;
  for (std::uint64_t part = 0; part < 4; ++part) {
    sessions.emplace_back([&run, part] {
      for (std::uint64_t id = part; id < kSessions; id += 4) {
        run.report(id, ParticipantPhase::kPrewarmed);
        run.report(id, ParticipantPhase::kParked);
      }
    });
  }
  for (auto& t : sessions) t.join();
  CHECK(waited.get().empty());
}

TEST_CASE("interrupt wakes a wait at once and returns who is late") {
  auto run = make_run();
  run.join(1);
  auto waited = std::async(std::launch::async, [&] {
    return run.wait_for(ParticipantPhase::kParked, std::chrono::steady_clock::now() + 60s);
  });
  std::this_thread::sleep_for(5ms);
  run.interrupt();
  CHECK(waited.get() == std::vector<std::uint64_t>{1});
  run.clear_interrupt();
  CHECK(run.wait_for(ParticipantPhase::kParked, soon()) == std::vector<std::uint64_t>{1});
}
