// pgflipctl: the operator's command-line client for pgflip's admin socket.
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "proxy/admin/admin_protocol.hpp"
#include "proxy/base/utc_time.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using local = asio::local::stream_protocol;
using pgflip::proxy::utc_now;

constexpr const char* kUsage = R"(pgflipctl - control a running pgflip over its admin socket

Usage: pgflipctl [--socket PATH | --config FILE] [--json] COMMAND [OPTIONS]

Commands:
  status                               active environment, sessions
  status --watch [--interval S] [--count N]
                                       redraw the active environment, client counts and
                                       replication lag every S seconds (default 2) until
                                       Ctrl-C, or N times
  show clients                         one row per client connection (consoles included)
  show servers                         one row per server connection
  show stats                           per-database transactions, queries, bytes, query
                                       time and errors since pgflip started
  show config                          the loaded configuration, secrets masked
  show state                           active environment, epoch, switchover, fence, uptime
  show replication                     replication status, one row per database
  replication precheck [--copy-schema] [--copy-roles]
                                       PASS/WARN/FAIL checks of blue and green
  replication init [--copy-schema] [--copy-roles]
                                       set up blue -> green replication, show copy progress
  replication status                   lag, retained WAL, table states, DDL, errors
  replication cleanup                  drop everything replication init created
  replication ack-ddl                  mark DDL recorded on blue as applied to green
  switchover [--timeout S] [--drain-timeout S] [--on-straggler abort|cancel] [--dry-run]
                                       move every live session to green; prints each
                                       step and a report; exit 0 only when green serves
  switchover history [--limit N]       the kept switchovers, oldest first: id, start, outcome,
                                       total and clients-held ms, sessions, reason (--json:
                                       the full reports); --limit: the newest N only
  show switchovers                     the same rows as switchover history, all kept ones
  abort                                abort a running switchover (before its commit point)
  reload                               re-read pgflip's configuration file (as SIGHUP): lists the
                                       keys now in force and those that need a restart; a bad
                                       file is refused whole (reason printed, exit 1)
  pause [--timeout S] | resume         park every client at its next transaction boundary
                                       (maintenance without a switchover) / release them
  help                                 the commands this pgflip serves

Any other words are sent as the command's name, so commands a newer pgflip adds work too.

Options:
  --socket PATH   admin socket (default: $PGFLIP_ADMIN_SOCKET, else /tmp/pgflip-admin.sock)
  --config FILE   read admin.socket from pgflip's configuration file
  --json          print the daemon's JSON lines instead of tables (with --watch: one JSON
                  object per refresh)
  --version, --help

Exit status: 0 success, 1 the command failed (reason printed), 2 usage error,
3 pgflip not reachable.
)";

int usage_error(const std::string& message) {
  std::cerr << "pgflipctl: " << message << "\n\n" << kUsage;
  return 2;
}

/// One exchange with the daemon: the request, every event line, the result line.
struct Exchange {
  enum class Outcome { kOk, kFailed, kUnreachable } outcome = Outcome::kUnreachable;
  json::object reply;  // the result line
  std::string error;   // why it is kFailed or kUnreachable
};

using EventHandler = std::function<void(const std::string& line, const json::object& event)>;

Exchange exchange(const std::string& socket_path, const std::string& command,
                  const json::object& args, const EventHandler& on_event,
                  const std::function<void(const std::string& line)>& on_reply_line = {}) {
  Exchange result;
  asio::io_context io;
  local::socket socket(io);
  boost::system::error_code ec;
  socket.connect(local::endpoint(socket_path), ec);
  if (ec) {
    result.error = "cannot reach pgflip at " + socket_path + ": " + ec.message();
    return result;
  }
  const std::string request = pgflip::proxy::admin_request_line(command, args);
  asio::write(socket, asio::buffer(request), ec);
  if (ec) {
    result.error = "cannot send the request: " + ec.message();
    return result;
  }
  result.outcome = Exchange::Outcome::kFailed;
  std::string buffer;
  for (;;) {
    const std::size_t n = asio::read_until(socket, asio::dynamic_buffer(buffer), '\n', ec);
    if (ec) {
      result.error = "pgflip closed the connection without a result (" + ec.message() + ")";
      return result;
    }
    const std::string line = buffer.substr(0, n - 1);
    buffer.erase(0, n);
    json::error_code jec;
    json::value value = json::parse(line, jec);
    if (jec || !value.is_object()) {
      result.error = "malformed reply from pgflip";
      return result;
    }
    json::object& message = value.as_object();
    if (message.contains("event")) {
      if (on_event) on_event(line, message);
      continue;
    }
    if (on_reply_line) on_reply_line(line);
    const json::value* ok = message.if_contains("ok");
    if (ok && ok->is_bool() && ok->as_bool()) {
      result.outcome = Exchange::Outcome::kOk;
    } else {
      result.error = "failed";
      const json::value* error = message.if_contains("error");
      if (error && error->is_object()) {
        if (const json::value* m = error->as_object().if_contains("message"); m && m->is_string()) {
          result.error = std::string(m->as_string());
        }
      }
    }
    result.reply = std::move(message);
    return result;
  }
}

std::string text_of(const json::object& reply) {
  const json::value* text = reply.if_contains("text");
  return text && text->is_string() ? std::string(text->as_string()) : std::string();
}

/// Runs one command the ordinary way: events as they come, then the result's text.
int run_command(const std::string& socket_path, const std::string& command,
                const json::object& args, bool as_json) {
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  bool progress_open = false;  // a progress line is on screen, to be overwritten
  auto on_event = [&](const std::string& line, const json::object& message) {
    if (as_json) {
      std::cout << line << "\n" << std::flush;
      return;
    }
    const std::string body = text_of(message);
    const bool progress =
        message.at("event").is_string() && message.at("event").as_string() == "progress";
    if (progress && tty) {
      std::cout << "\r\033[K" << body << std::flush;
      progress_open = true;
    } else {
      if (progress_open) std::cout << "\n";
      progress_open = false;
      std::cout << body << "\n" << std::flush;
    }
  };
  auto on_reply_line = [&](const std::string& line) {
    if (progress_open) std::cout << "\n";
    if (as_json) std::cout << line << "\n" << std::flush;
  };
  const Exchange result = exchange(socket_path, command, args, on_event, on_reply_line);
  if (result.outcome == Exchange::Outcome::kUnreachable) {
    std::cerr << "pgflipctl: " << result.error << "\n";
    return 3;
  }
  if (!as_json && !result.reply.empty()) {
    const std::string body = text_of(result.reply);
    std::cout << body;
    if (!body.empty() && body.back() != '\n') std::cout << "\n";
  }
  if (result.outcome != Exchange::Outcome::kOk) {
    std::cerr << "pgflipctl: " << command << ": " << result.error << "\n";
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// status --watch

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_interrupt(int) { g_interrupted = 1; }

std::string scalar(const json::value* value) {
  if (!value || value->is_null()) return "-";
  if (value->is_string()) return std::string(value->as_string());
  if (value->is_double()) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f", value->as_double());
    return text;
  }
  return json::serialize(*value);
}

/// One refresh: status, client counts (show clients) and, with [green], replication lag.
/// Returns the screen text and the same as a JSON object.
std::pair<std::string, json::object> watch_frame(const std::string& socket_path,
                                                 bool& unreachable) {
  std::string screen;
  json::object frame{{"time", utc_now()}};
  const Exchange status = exchange(socket_path, "status", {}, {});
  unreachable = status.outcome == Exchange::Outcome::kUnreachable;
  if (status.outcome != Exchange::Outcome::kOk) {
    frame["error"] = status.error;
    return {"pgflip: " + status.error + "\n", std::move(frame)};
  }
  const json::value* result = status.reply.if_contains("result");
  const json::object empty;
  const json::object& s = result && result->is_object() ? result->as_object() : empty;
  frame["status"] = s;
  screen += "pgflip " + scalar(s.if_contains("version")) + "    " + utc_now() + "\n";
  screen += "active:      " + scalar(s.if_contains("active")) + " (epoch " +
            scalar(s.if_contains("epoch")) + ")" +
            (s.contains("switching") && s.at("switching").is_bool() && s.at("switching").as_bool()
                 ? "  SWITCHING"
                 : "") +
            "\n";
  screen += "blue:        " + scalar(s.if_contains("blue")) + "\n";
  screen += "green:       " + scalar(s.if_contains("green")) + "\n";

  // Client counts by type, environment and state.
  const Exchange clients = exchange(socket_path, "show clients", {}, {});
  if (clients.outcome == Exchange::Outcome::kOk && clients.reply.contains("result") &&
      clients.reply.at("result").is_array()) {
    std::map<std::string, int> by_environment;
    std::map<std::string, int> by_state;
    int total = 0;
    int consoles = 0;
    for (const json::value& row : clients.reply.at("result").as_array()) {
      if (!row.is_object()) continue;
      const json::object& r = row.as_object();
      if (scalar(r.if_contains("type")) == "console") {
        ++consoles;
        continue;
      }
      ++total;
      ++by_environment[scalar(r.if_contains("environment"))];
      ++by_state[scalar(r.if_contains("state"))];
    }
    json::object counts{{"total", total}, {"consoles", consoles}};
    std::string line = "clients:     " + std::to_string(total);
    std::string details;
    json::object envs;
    for (const auto& [env, n] : by_environment) {
      details += (details.empty() ? "" : ", ") + env + " " + std::to_string(n);
      envs[env] = n;
    }
    json::object states;
    for (const auto& [state, n] : by_state) {
      details += (details.empty() ? "" : ", ") + state + " " + std::to_string(n);
      states[state] = n;
    }
    counts["by_environment"] = std::move(envs);
    counts["by_state"] = std::move(states);
    frame["clients"] = std::move(counts);
    if (!details.empty()) line += " (" + details + ")";
    screen += line + "; consoles " + std::to_string(consoles) + "\n";
  } else {
    screen += "clients:     " + scalar(s.if_contains("sessions")) + "\n";
  }

  const json::value* green = s.if_contains("green");
  if (green && !green->is_null()) {
    const Exchange replication = exchange(socket_path, "show replication", {}, {});
    if (replication.outcome == Exchange::Outcome::kOk && replication.reply.contains("result") &&
        replication.reply.at("result").is_array()) {
      const json::array& rows = replication.reply.at("result").as_array();
      frame["replication"] = rows;
      screen += "replication:\n";
      if (rows.empty()) screen += "  (no databases)\n";
      for (const json::value& row : rows) {
        if (!row.is_object()) continue;
        const json::object& r = row.as_object();
        screen += "  " + scalar(r.if_contains("database")) + ": " + scalar(r.if_contains("state")) +
                  ", lag " + scalar(r.if_contains("lag_bytes")) + " bytes / " +
                  scalar(r.if_contains("lag_seconds")) + " s, tables " +
                  scalar(r.if_contains("tables_ready")) + "/" +
                  scalar(r.if_contains("tables_total")) + "\n";
      }
    } else if (replication.outcome != Exchange::Outcome::kUnreachable) {
      frame["replication_error"] = replication.error;
      screen += "replication: " + replication.error + "\n";
    }
  }
  return {std::move(screen), std::move(frame)};
}

int watch(const std::string& socket_path, double interval, long count, bool as_json) {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  int status = 0;
  for (long i = 0; (count <= 0 || i < count) && !g_interrupted; ++i) {
    bool unreachable = false;
    auto [screen, frame] = watch_frame(socket_path, unreachable);
    if (as_json) {
      std::cout << json::serialize(frame) << "\n";
    } else if (tty) {
      std::cout << "\033[H\033[2J" << screen << "\n(every " << interval << " s; Ctrl-C to stop)\n";
    } else {
      std::cout << (i > 0 ? "\n" : "") << screen;
    }
    std::cout << std::flush;
    status = unreachable ? 3 : 0;
    if (count > 0 && i + 1 >= count) break;
    // Sleeps in slices so that Ctrl-C ends the watch promptly.
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<long>(interval * 1000));
    while (!g_interrupted && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return status;
}

std::optional<double> positive_number(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(value > 0)) return std::nullopt;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string socket_path;
  bool as_json = false;
  bool watch_mode = false;
  double interval = 2;
  long count = 0;
  std::vector<std::string> words;
  json::object request_args;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--version") {
      std::cout << "pgflipctl " << PGFLIP_VERSION << "\n";
      return 0;
    }
    if (arg == "--json") {
      as_json = true;
    } else if (arg == "--watch") {
      watch_mode = true;
    } else if (arg == "--interval" && i + 1 < args.size()) {
      const auto value = positive_number(args[++i]);
      if (!value) return usage_error("--interval needs a positive number of seconds");
      interval = *value;
    } else if (arg == "--count" && i + 1 < args.size()) {
      const auto value = positive_number(args[++i]);
      if (!value || *value != static_cast<double>(static_cast<long>(*value))) {
        return usage_error("--count needs a positive whole number");
      }
      count = static_cast<long>(*value);
    } else if (arg == "--limit" && i + 1 < args.size()) {
      const auto value = positive_number(args[++i]);
      if (!value || *value != static_cast<double>(static_cast<long>(*value))) {
        return usage_error("--limit needs a positive whole number");
      }
      request_args["limit"] = static_cast<std::int64_t>(*value);
    } else if (arg == "--socket" && i + 1 < args.size()) {
      socket_path = args[++i];
    } else if (arg == "--config" && i + 1 < args.size()) {
      try {
        socket_path = pgflip::config::load_config_file(args[++i]).admin.socket;
      } catch (const std::exception& e) {
        std::cerr << "pgflipctl: " << e.what() << "\n";
        return 2;
      }
    } else if (arg == "--copy-schema") {
      request_args["copy_schema"] = true;
    } else if (arg == "--copy-roles") {
      request_args["copy_roles"] = true;
    } else if (arg == "--dry-run") {
      request_args["dry_run"] = true;
    } else if ((arg == "--timeout" || arg == "--drain-timeout") && i + 1 < args.size()) {
      const auto seconds = positive_number(args[i + 1]);
      if (!seconds) return usage_error(arg + " needs a positive number of seconds");
      request_args[arg == "--timeout" ? "timeout_s" : "drain_timeout_s"] = *seconds;
      ++i;
    } else if (arg == "--on-straggler" && i + 1 < args.size()) {
      if (args[i + 1] != "abort" && args[i + 1] != "cancel") {
        return usage_error("--on-straggler takes abort or cancel");
      }
      request_args["on_straggler"] = args[++i];
    } else if (arg.starts_with("--")) {
      return usage_error("unknown option '" + arg + "'");
    } else {
      words.push_back(arg);
    }
  }
  if (words.empty()) return usage_error("no command given");
  std::string command;
  for (const auto& word : words) command += (command.empty() ? "" : " ") + word;
  if (watch_mode && command != "status") return usage_error("--watch goes with status only");
  if (!watch_mode && count > 0) return usage_error("--count goes with status --watch");

  if (socket_path.empty()) {
    const char* env = std::getenv("PGFLIP_ADMIN_SOCKET");
    socket_path = env && *env ? env : pgflip::config::AdminSettings{}.socket;
  }
  if (watch_mode) return watch(socket_path, interval, count, as_json);
  return run_command(socket_path, command, request_args, as_json);
}
