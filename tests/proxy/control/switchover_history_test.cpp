// The switchover history: reports appended and read back whole, a torn last line skipped (and
// not glued to the next append), damaged lines skipped, the newest N kept, read limits.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "proxy/control/switchover_history.hpp"

using namespace pgflip::proxy;

namespace {

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("pgflip-history-test-" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  [[nodiscard]] std::string file(const std::string& name) const { return (path / name).string(); }
  [[nodiscard]] std::string read(const std::string& name) const {
    std::ifstream in(path / name, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  void append_raw(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary | std::ios::app) << text;
  }
};

/// A committed run with every kind of field filled in.
SwitchoverReport committed(const std::string& id) {
  SwitchoverReport r;
  r.id = id;
  r.started_at = 1738324800.25;
  r.outcome = SwitchoverOutcome::kCommitted;
  r.total_ms = 812.5;
  r.window_ms = 231.25;
  r.steps = {StepRecord{Step::kGuardrails, 20.5, 1738324800.25, "within limits"},
             StepRecord{Step::kPark, 110.0, 1738324800.5, "2 parked, 0 straggler(s)"},
             StepRecord{Step::kCleanup, 30.0, 1738324801.0, "dropped"}};
  r.sessions = 3;
  r.moved = 2;
  r.ended = {EndedSession{7, ParticipantPhase::kEnded, "holds a temporary table"}};
  r.stragglers = {9};
  r.participants = {SessionRecord{5, ParticipantPhase::kMoved, 150.5, true, 120.25},
                    SessionRecord{6, ParticipantPhase::kMoved, 149.0, false, 0},
                    SessionRecord{7, ParticipantPhase::kEnded, 10.0, false, 0}};
  r.parked_clients = 1;
  r.max_parked_ms = 120.25;
  r.p99_parked_ms = 120.25;
  r.sequences = 4;
  r.active = "green";
  return r;
}

SwitchoverReport refused(const std::string& id) {
  SwitchoverReport r;
  r.id = id;
  r.started_at = 1738324700;
  r.outcome = SwitchoverOutcome::kAborted;
  r.failed_step = Step::kGuardrails;
  r.reason = "[app] 1 DDL command(s) ran on blue since init";
  r.total_ms = 15;
  r.active = "blue";
  return r;
}

}  // namespace

TEST_CASE("the history file sits beside the state file, named after it") {
  CHECK(history_path("/var/lib/pgflip/state.json") == "/var/lib/pgflip/state.history.jsonl");
  CHECK(history_path("/srv/a/shop.json") == "/srv/a/shop.history.jsonl");
  CHECK(history_path("/srv/a/state") == "/srv/a/state.history.jsonl");
}

TEST_CASE("appended reports read back whole, oldest first, one line each") {
  TempDir dir;
  const auto path = dir.file("state.history.jsonl");
  CHECK(read_history(path).reports.empty());  // no file: an empty history
  append_history(path, refused("so-1"));
  append_history(path, committed("so-2"));
  const std::string text = dir.read("state.history.jsonl");
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);
  CHECK(text.back() == '\n');

  const auto history = read_history(path);
  CHECK(history.warnings.empty());
  REQUIRE(history.reports.size() == 2);
  const auto& first = history.reports[0];
  CHECK(first.id == "so-1");
  CHECK(first.outcome == SwitchoverOutcome::kAborted);
  REQUIRE(first.failed_step.has_value());
  CHECK(*first.failed_step == Step::kGuardrails);
  CHECK(first.reason == refused("so-1").reason);
  CHECK(first.steps.empty());
  CHECK(outcome_summary(first) == "refused at guardrails");

  const auto& r = history.reports[1];
  const auto want = committed("so-2");
  CHECK(r.id == want.id);
  CHECK(r.started_at == want.started_at);
  CHECK(r.outcome == SwitchoverOutcome::kCommitted);
  CHECK_FALSE(r.failed_step.has_value());
  CHECK(r.total_ms == want.total_ms);
  CHECK(r.window_ms == want.window_ms);
  REQUIRE(r.steps.size() == 3);
  CHECK(r.steps[1].step == Step::kPark);
  CHECK(r.steps[1].ms == 110.0);
  CHECK(r.steps[1].started_at == 1738324800.5);
  CHECK(r.steps[1].detail == "2 parked, 0 straggler(s)");
  CHECK(r.sessions == 3);
  CHECK(r.moved == 2);
  REQUIRE(r.ended.size() == 1);
  CHECK(r.ended[0].session == 7);
  CHECK(r.ended[0].phase == ParticipantPhase::kEnded);
  CHECK(r.ended[0].reason == "holds a temporary table");
  CHECK(r.stragglers == std::vector<std::uint64_t>{9});
  REQUIRE(r.participants.size() == 3);
  CHECK(r.participants[0].session == 5);
  CHECK(r.participants[0].phase == ParticipantPhase::kMoved);
  CHECK(r.participants[0].parked_ms == 150.5);
  CHECK(r.participants[0].held_request);
  CHECK(r.participants[0].held_ms == 120.25);
  CHECK_FALSE(r.participants[1].held_request);
  CHECK(r.parked_clients == 1);
  CHECK(r.max_parked_ms == 120.25);
  CHECK(r.sequences == 4);
  CHECK(r.active == "green");
  CHECK(outcome_summary(r) == "committed");
}

TEST_CASE("a torn last line is skipped with a warning, and the next append starts a new line") {
  TempDir dir;
  const auto path = dir.file("h.jsonl");
  append_history(path, committed("so-1"));
  // A crash in the middle of the second append: half a line, no newline.
  const std::string line = dir.read("h.jsonl");
  dir.append_raw("h.jsonl", line.substr(0, line.size() / 2));

  auto history = read_history(path);
  REQUIRE(history.reports.size() == 1);
  CHECK(history.reports[0].id == "so-1");
  REQUIRE(history.warnings.size() == 1);
  CHECK(history.warnings[0].find("line 2 is torn") != std::string::npos);

  append_history(path, refused("so-3"));
  history = read_history(path);
  REQUIRE(history.reports.size() == 2);
  CHECK(history.reports[0].id == "so-1");
  CHECK(history.reports[1].id == "so-3");  // not glued to the torn line
  REQUIRE(history.warnings.size() == 1);
  CHECK(history.warnings[0].find("line 2 is not a switchover report") != std::string::npos);
}

TEST_CASE("a damaged line in the middle is skipped, the others are read") {
  TempDir dir;
  const auto path = dir.file("h.jsonl");
  append_history(path, refused("so-1"));
  dir.append_raw("h.jsonl", "{\"switchover_id\":\"so-x\"}\nnot json at all\n");
  append_history(path, committed("so-2"));
  const auto history = read_history(path);
  REQUIRE(history.reports.size() == 2);
  CHECK(history.reports[0].id == "so-1");
  CHECK(history.reports[1].id == "so-2");
  CHECK(history.warnings.size() == 2);
}

TEST_CASE("the history keeps the newest reports, and a read can ask for the newest N") {
  TempDir dir;
  const auto path = dir.file("h.jsonl");
  for (int i = 1; i <= 7; ++i) append_history(path, committed("so-" + std::to_string(i)), 3);
  const std::string text = dir.read("h.jsonl");
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  auto history = read_history(path);
  REQUIRE(history.reports.size() == 3);
  CHECK(history.reports[0].id == "so-5");
  CHECK(history.reports[2].id == "so-7");

  history = read_history(path, 2);
  REQUIRE(history.reports.size() == 2);
  CHECK(history.reports[0].id == "so-6");
  CHECK(history.reports[1].id == "so-7");
  CHECK(read_history(path, 10).reports.size() == 3);
}

TEST_CASE("outcome summaries tell a refusal, an operator's abort and a rollback apart") {
  auto r = refused("so-1");
  CHECK(outcome_summary(r) == "refused at guardrails");
  r.failed_step = Step::kDrain;
  CHECK(outcome_summary(r) == "rolled back at drain");
  r.operator_abort = true;
  CHECK(outcome_summary(r) == "aborted at drain by the operator");
  r.outcome = SwitchoverOutcome::kDryRun;
  CHECK(outcome_summary(r) == "dry run");
}

TEST_CASE("an append to a directory that cannot hold the file throws") {
  TempDir dir;
  const auto blocker = dir.file("not-a-dir");
  dir.append_raw("not-a-dir", "x");
  CHECK_THROWS_AS(append_history(blocker + "/h.jsonl", committed("so-1")), std::runtime_error);
}
