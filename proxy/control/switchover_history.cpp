// The switchover history: every switchover's report, one JSON line each, appended durably
// beside the state file; and the report's JSON form, which the history and the admin share.
#include "proxy/control/switchover_history.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace pgflip::proxy {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

/// Writes all of `data`; false (errno set) on failure.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// fsync of a directory, so that a file created or renamed in it survives a crash of the host.
bool fsync_directory(const fs::path& directory) {
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return false;
  const int rc = ::fsync(dir);
  const int saved = errno;
  ::close(dir);
  errno = saved;
  return rc == 0;
}

fs::path directory_of(const std::string& path) {
  const fs::path p(path);
  return p.has_parent_path() ? p.parent_path() : fs::path(".");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read switchover history " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The file's lines; `torn` is the text after the last newline (a line still being written,
/// or cut short by a crash).
struct Lines {
  std::vector<std::string_view> complete;
  std::string_view torn;
};

Lines split_lines(std::string_view text) {
  Lines lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string_view::npos; start = nl + 1) {
    if (nl > start) lines.complete.push_back(text.substr(start, nl - start));
  }
  lines.torn = text.substr(start);
  return lines;
}

// --- reading JSON fields --------------------------------------------------------------------

const json::value& field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) throw std::runtime_error("no \"" + std::string(key) + "\"");
  return *v;
}

std::string text(const json::object& o, std::string_view key) {
  const json::value& v = field(o, key);
  if (!v.is_string()) throw std::runtime_error("\"" + std::string(key) + "\" is not a string");
  return std::string(v.as_string());
}

double number(const json::value& v, std::string_view key) {
  if (v.is_double()) return v.as_double();
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  throw std::runtime_error("\"" + std::string(key) + "\" is not a number");
}

double number(const json::object& o, std::string_view key) { return number(field(o, key), key); }

std::uint64_t count(const json::value& v, std::string_view key) {
  if (v.is_uint64()) return v.as_uint64();
  if (v.is_int64() && v.as_int64() >= 0) return static_cast<std::uint64_t>(v.as_int64());
  throw std::runtime_error("\"" + std::string(key) + "\" is not a count");
}

std::uint64_t count(const json::object& o, std::string_view key) {
  return count(field(o, key), key);
}

const json::array& array(const json::object& o, std::string_view key) {
  const json::value& v = field(o, key);
  if (!v.is_array()) throw std::runtime_error("\"" + std::string(key) + "\" is not an array");
  return v.as_array();
}

const json::object& object(const json::value& v, std::string_view what) {
  if (!v.is_object()) throw std::runtime_error(std::string(what) + " is not an object");
  return v.as_object();
}

Step parse_step(std::string_view name) {
  for (std::size_t i = 0; i < kStepCount; ++i) {
    if (step_name(static_cast<Step>(i)) == name) return static_cast<Step>(i);
  }
  throw std::runtime_error("unknown step \"" + std::string(name) + "\"");
}

ParticipantPhase parse_phase(std::string_view name) {
  for (auto phase :
       {ParticipantPhase::kJoined, ParticipantPhase::kPrewarmed, ParticipantPhase::kHeld,
        ParticipantPhase::kParked, ParticipantPhase::kMoved, ParticipantPhase::kReleased,
        ParticipantPhase::kEnded, ParticipantPhase::kFailed}) {
    if (phase_name(phase) == name) return phase;
  }
  throw std::runtime_error("unknown session phase \"" + std::string(name) + "\"");
}

SwitchoverOutcome parse_outcome(std::string_view name) {
  for (auto outcome :
       {SwitchoverOutcome::kCommitted, SwitchoverOutcome::kAborted, SwitchoverOutcome::kDryRun}) {
    if (outcome_name(outcome) == name) return outcome;
  }
  throw std::runtime_error("unknown outcome \"" + std::string(name) + "\"");
}

}  // namespace

std::string history_path(const std::string& state_file) {
  const fs::path state(state_file);
  return (state.parent_path() / (state.stem().string() + ".history.jsonl")).string();
}

json::object step_json(const StepRecord& step) {
  return json::object{{"step", step_name(step.step)},
                      {"ms", step.ms},
                      {"started_at", step.started_at},
                      {"detail", step.detail}};
}

json::object report_json(const SwitchoverReport& r) {
  json::array steps;
  for (const auto& step : r.steps) steps.push_back(step_json(step));
  json::array ended;
  for (const auto& e : r.ended) {
    ended.push_back(
        json::object{{"session", e.session}, {"phase", phase_name(e.phase)}, {"reason", e.reason}});
  }
  json::array stragglers;
  for (auto sid : r.stragglers) stragglers.push_back(sid);
  json::array participants;
  for (const auto& p : r.participants) {
    participants.push_back(json::object{{"session", p.session},
                                        {"phase", phase_name(p.phase)},
                                        {"parked_ms", p.parked_ms},
                                        {"held_request", p.held_request},
                                        {"held_ms", p.held_ms}});
  }
  return json::object{{"switchover_id", r.id},
                      {"started_at", r.started_at},
                      {"outcome", outcome_name(r.outcome)},
                      {"operator_abort", r.operator_abort},
                      {"failed_step", r.failed_step ? step_name(*r.failed_step) : ""},
                      {"reason", r.reason},
                      {"total_ms", r.total_ms},
                      {"window_ms", r.window_ms},
                      {"steps", std::move(steps)},
                      {"sessions", json::object{{"total", r.sessions},
                                                {"moved", r.moved},
                                                {"released_to_blue", r.released},
                                                {"ended", r.ended.size()}}},
                      {"ended", std::move(ended)},
                      {"stragglers", std::move(stragglers)},
                      {"participants", std::move(participants)},
                      {"parked_clients", r.parked_clients},
                      {"max_parked_ms", r.max_parked_ms},
                      {"p99_parked_ms", r.p99_parked_ms},
                      {"sequences_copied", r.sequences},
                      {"sentinel", r.id},
                      {"active", r.active}};
}

SwitchoverReport parse_report(const json::value& value) {
  const json::object& o = object(value, "a report");
  SwitchoverReport r;
  r.id = text(o, "switchover_id");
  if (r.id.empty()) throw std::runtime_error("\"switchover_id\" is empty");
  r.started_at = number(o, "started_at");
  r.outcome = parse_outcome(text(o, "outcome"));
  const json::value& operator_abort = field(o, "operator_abort");
  r.operator_abort = operator_abort.is_bool() && operator_abort.as_bool();
  if (const auto failed = text(o, "failed_step"); !failed.empty()) {
    r.failed_step = parse_step(failed);
  }
  r.reason = text(o, "reason");
  r.total_ms = number(o, "total_ms");
  r.window_ms = number(o, "window_ms");
  for (const auto& v : array(o, "steps")) {
    const json::object& s = object(v, "a step");
    r.steps.push_back(StepRecord{parse_step(text(s, "step")), number(s, "ms"),
                                 number(s, "started_at"), text(s, "detail")});
  }
  const json::object& sessions = object(field(o, "sessions"), "\"sessions\"");
  r.sessions = count(sessions, "total");
  r.moved = count(sessions, "moved");
  r.released = count(sessions, "released_to_blue");
  for (const auto& v : array(o, "ended")) {
    const json::object& e = object(v, "an ended session");
    r.ended.push_back(
        EndedSession{count(e, "session"), parse_phase(text(e, "phase")), text(e, "reason")});
  }
  for (const auto& v : array(o, "stragglers")) r.stragglers.push_back(count(v, "stragglers"));
  for (const auto& v : array(o, "participants")) {
    const json::object& p = object(v, "a participant");
    const json::value& held = field(p, "held_request");
    r.participants.push_back(SessionRecord{count(p, "session"), parse_phase(text(p, "phase")),
                                           number(p, "parked_ms"), held.is_bool() && held.as_bool(),
                                           number(p, "held_ms")});
  }
  r.parked_clients = count(o, "parked_clients");
  r.max_parked_ms = number(o, "max_parked_ms");
  r.p99_parked_ms = number(o, "p99_parked_ms");
  r.sequences = count(o, "sequences_copied");
  r.active = text(o, "active");
  return r;
}

std::string outcome_summary(const SwitchoverReport& r) {
  switch (r.outcome) {
    case SwitchoverOutcome::kCommitted:
      return "committed";
    case SwitchoverOutcome::kDryRun:
      return "dry run";
    case SwitchoverOutcome::kAborted:
      break;
  }
  const std::string at = r.failed_step ? std::string(step_name(*r.failed_step)) : "?";
  if (r.operator_abort) return "aborted at " + at + " by the operator";
  // The guardrails change nothing: failing them is a refusal, not a rollback.
  if (r.failed_step == Step::kGuardrails) return "refused at guardrails";
  return "rolled back at " + at;
}

void append_history(const std::string& path, const SwitchoverReport& report, std::size_t keep) {
  const fs::path directory = directory_of(path);
  std::error_code ec;
  fs::create_directories(directory, ec);
  const bool existed = fs::exists(path, ec);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot open switchover history " + path);
  std::string line = json::serialize(report_json(report)) + "\n";
  // A crash mid-append leaves a line without its newline: end it, or this line would be
  // glued to it and both skipped on reading.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') line.insert(0, "\n");
  }
  if (!write_all(fd, line)) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    fail("cannot append to switchover history " + path);
  }
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    fail("cannot fsync switchover history " + path);
  }
  ::close(fd);
  if (!existed && !fsync_directory(directory)) {
    spdlog::warn("switchover history {} created, but the fsync of directory {} failed ({})", path,
                 directory.string(), std::strerror(errno));
  }

  // Bounded: the newest `keep` reports stay.
  try {
    const std::string body = read_text(path);
    const Lines lines = split_lines(body);
    if (lines.complete.size() <= keep) return;
    std::string kept;
    for (std::size_t i = lines.complete.size() - keep; i < lines.complete.size(); ++i) {
      kept.append(lines.complete[i]).push_back('\n');
    }
    const std::string temp = path + ".tmp";
    const int out = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) fail("cannot create " + temp);
    const bool written = write_all(out, kept) && ::fsync(out) == 0;
    const int saved = errno;
    ::close(out);
    errno = saved;
    if (!written) fail("cannot write " + temp);
    if (::rename(temp.c_str(), path.c_str()) != 0) fail("cannot rename " + temp + " to " + path);
    (void)fsync_directory(directory);  // at worst a crash brings back the longer file
  } catch (const std::exception& e) {
    spdlog::warn("switchover history {}: could not drop the reports beyond the newest {}: {}", path,
                 keep, e.what());
  }
}

HistoryRead read_history(const std::string& path, std::size_t limit) {
  HistoryRead history;
  std::error_code ec;
  if (!fs::exists(path, ec)) return history;
  const std::string body = read_text(path);
  const Lines lines = split_lines(body);
  auto parse = [&](std::string_view line, std::size_t line_no, bool torn) {
    json::error_code jec;
    const json::value value = json::parse(line, jec);
    try {
      if (jec) throw std::runtime_error(jec.message());
      history.reports.push_back(parse_report(value));
    } catch (const std::exception& e) {
      history.warnings.push_back(
          "switchover history " + path + ": line " + std::to_string(line_no) +
          (torn ? " is torn (pgflip stopped while writing it?)"
                : " is not a switchover report (" + std::string(e.what()) + ")") +
          "; skipped");
    }
  };
  for (std::size_t i = 0; i < lines.complete.size(); ++i) parse(lines.complete[i], i + 1, false);
  if (!lines.torn.empty()) parse(lines.torn, lines.complete.size() + 1, true);
  if (limit > 0 && history.reports.size() > limit) {
    history.reports.erase(history.reports.begin(),
                          history.reports.end() - static_cast<std::ptrdiff_t>(limit));
  }
  return history;
}

}  // namespace pgflip::proxy
