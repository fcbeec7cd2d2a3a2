// pgflipctl: the operator's command-line client for pgflip's admin socket.
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/admin_protocol.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using local = asio::local::stream_protocol;

constexpr const char* kUsage = R"(pgflipctl - control a running pgflip over its admin socket

Usage: pgflipctl [--socket PATH | --config FILE] [--json] COMMAND [OPTIONS]

Commands:
  status                               active environment, sessions
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
  abort                                abort a running switchover (before its commit point)
  show stats                           per-database transactions, queries, bytes, query
                                       time and errors since pgflip started
  help                                 the commands this pgflip serves

Options:
  --socket PATH   admin socket (default: $PGFLIP_ADMIN_SOCKET, else /tmp/pgflip-admin.sock)
  --config FILE   read admin.socket from pgflip's configuration file
  --json          print the daemon's JSON lines instead of tables
  --version, --help

Exit status: 0 success, 1 the command failed (reason printed), 2 usage error,
3 pgflip not reachable.
)";

int usage_error(const std::string& message) {
  std::cerr << "pgflipctl: " << message << "\n\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string socket_path;
  bool as_json = false;
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
      char* end = nullptr;
      const double seconds = std::strtod(args[i + 1].c_str(), &end);
      if (end == args[i + 1].c_str() || *end != '\0' || seconds <= 0) {
        return usage_error(arg + " needs a positive number of seconds");
      }
      request_args[arg == "--timeout" ? "timeout_s" : "drain_timeout_s"] = seconds;
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

  if (socket_path.empty()) {
    const char* env = std::getenv("PGFLIP_ADMIN_SOCKET");
    socket_path = env && *env ? env : pgflip::config::AdminSettings{}.socket;
  }

  asio::io_context io;
  local::socket socket(io);
  boost::system::error_code ec;
  socket.connect(local::endpoint(socket_path), ec);
  if (ec) {
    std::cerr << "pgflipctl: cannot reach pgflip at " << socket_path << ": " << ec.message()
              << "\n";
    return 3;
  }
  const std::string request = pgflip::proxy::admin_request_line(command, request_args);
  asio::write(socket, asio::buffer(request), ec);
  if (ec) {
    std::cerr << "pgflipctl: cannot send the request: " << ec.message() << "\n";
    return 3;
  }

  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  std::string buffer;
  bool progress_open = false;  // a progress line is on screen, to be overwritten
  for (;;) {
    const std::size_t n = asio::read_until(socket, asio::dynamic_buffer(buffer), '\n', ec);
    if (ec) {
      std::cerr << "\npgflipctl: pgflip closed the connection without a result (" << ec.message()
                << ")\n";
      return 1;
    }
    const std::string line = buffer.substr(0, n - 1);
    buffer.erase(0, n);
    json::error_code jec;
    const json::value value = json::parse(line, jec);
    if (jec || !value.is_object()) {
      std::cerr << "pgflipctl: malformed reply from pgflip\n";
      return 1;
    }
    const json::object& message = value.as_object();
    if (as_json) std::cout << line << "\n" << std::flush;
    const json::value* text = message.if_contains("text");
    const std::string body = text && text->is_string() ? std::string(text->as_string()) : "";
    if (message.contains("event")) {
      if (as_json) continue;
      const bool progress = message.at("event").as_string() == "progress";
      if (progress && tty) {
        std::cout << "\r\033[K" << body << std::flush;
        progress_open = true;
      } else {
        if (progress_open) std::cout << "\n";
        progress_open = false;
        std::cout << body << "\n" << std::flush;
      }
      continue;
    }
    if (progress_open) std::cout << "\n";
    const bool ok =
        message.contains("ok") && message.at("ok").is_bool() && message.at("ok").as_bool();
    if (!as_json) {
      std::cout << body;
      if (!body.empty() && body.back() != '\n') std::cout << "\n";
    }
    if (!ok) {
      const json::value* error = message.if_contains("error");
      std::string reason = "failed";
      if (error && error->is_object() && error->as_object().contains("message")) {
        reason = json::value_to<std::string>(error->as_object().at("message"));
      }
      std::cerr << "pgflipctl: " << command << ": " << reason << "\n";
      return 1;
    }
    return 0;
  }
}
