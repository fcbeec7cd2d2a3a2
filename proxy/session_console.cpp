// A session served by the admin console: a client logged in to admin.console_database talks
// to pgflip itself. Its queries are console commands (console.hpp) run through the same admin
// command table as the admin socket, on a thread of their own so that a blocking command
// (libpq, a switchover) never stalls this worker.

#include <algorithm>
#include <array>

#include "protocol/messages.hpp"
#include "proxy/console.hpp"
#include "proxy/session.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;
namespace json = boost::json;

namespace {

/// What an admin command running on its own thread hands back to the console session.
struct ConsoleCall {
  std::mutex mutex;
  std::vector<std::string> notices;
  std::optional<AdminReply> reply;
};

bool listed(const std::vector<std::string>& users, const std::string& user) {
  return std::find(users.begin(), users.end(), user) != users.end();
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool Session::wants_console() const {
  const std::string& console_database = config_->admin.console_database;
  if (console_database.empty()) return false;
  const std::string* database = startup_message_.find("database");
  const std::string& user = *startup_message_.find("user");
  return (database && !database->empty() ? *database : user) == console_database;
}

awaitable<bool> Session::start_console(const std::vector<std::string>& unsupported_options) {
  const std::string& user = *startup_message_.find("user");
  console_admin_ = credentials_.admin;
  if (!console_admin_ && !listed(config_->auth.stats_users, user)) {
    std::string refusal = proto::encode_error(
        "FATAL", "42501",
        "permission denied: user \"" + user +
            "\" is not an admin or stats user of the pgflip console (auth.admin_users, "
            "auth.stats_users)");
    co_await write_client(std::move(refusal));
    log::info(log_conn(), "{} user={} refused: not an admin or stats user of the console", peer_,
              user);
    co_return false;
  }
  console_ = true;
  set_state(State::kConsole);

  const auto [client_pid, client_secret] = context_.cancels.allocate();
  client_process_id_ = client_pid;
  cancel_key_allocated_ = true;  // no target: a CancelRequest for a console does nothing

  std::string out;
  if (startup_message_.minor != 0 || !unsupported_options.empty()) {
    proto::encode(proto::NegotiateProtocolVersion{0, unsupported_options}, out);
  }
  proto::encode(proto::Authentication{0, {}}, out);
  const std::pair<const char*, std::string> parameters[] = {
      {"server_version", std::string("pgflip ") + PGFLIP_VERSION},
      {"server_encoding", "UTF8"},
      {"client_encoding", "UTF8"},
      {"DateStyle", "ISO"},
      {"integer_datetimes", "on"},
      {"standard_conforming_strings", "on"},
  };
  for (const auto& [name, value] : parameters) {
    proto::encode(proto::ParameterStatus{name, value}, out);
  }
  proto::encode(proto::BackendKeyData{client_pid, client_secret}, out);
  proto::encode(proto::ReadyForQuery{'I'}, out);
  client_write_in_progress_ = true;
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(out), use_nothrow);
  (void)n;
  client_write_in_progress_ = false;
  if (ec) co_return false;
  log::info(log_conn(), "{} user={} opened the admin console ({})", peer_, user,
            console_admin_ ? "admin" : "stats");
  co_return true;
}

awaitable<void> Session::serve_console() {
  std::string buffer = std::move(client_pending_);
  client_pending_.clear();
  std::array<char, 4096> chunk{};
  // After a refused extended-protocol message everything up to the next Sync is discarded,
  // as a server does after an error.
  bool skipping_to_sync = false;
  std::string why = "client terminated";
  for (;;) {
    if (shutdown_requested_) {
      std::string bye = proto::encode_error(
          "FATAL", "57P01", "terminating connection because pgflip is shutting down");
      co_await write_client(std::move(bye));
      why = "pgflip shutting down";
      break;
    }
    auto decoded = proto::decode_frontend(buffer, config_->server.max_message_size);
    if (auto* error = std::get_if<proto::DecodeError>(&decoded)) {
      std::string reply =
          proto::encode_error("FATAL", "08P01", "protocol violation: " + error->detail);
      co_await write_client(std::move(reply));
      why = "protocol violation: " + error->detail;
      break;
    }
    if (std::holds_alternative<proto::NeedMoreData>(decoded)) {
      auto [ec, n] = co_await client_.async_read_some(asio::buffer(chunk), use_nothrow);
      if (ec == asio::error::operation_aborted && shutdown_requested_) continue;
      if (ec) {
        why = "client disconnected";
        break;
      }
      buffer.append(chunk.data(), n);
      continue;
    }
    auto& message = std::get<proto::Decoded<proto::FrontendMessage>>(decoded);
    const proto::FrontendMessage frontend = std::move(message.message);
    buffer.erase(0, message.consumed);

    if (const auto* query = std::get_if<proto::Query>(&frontend)) {
      co_await run_console_query(query->query);
      continue;
    }
    if (std::holds_alternative<proto::Terminate>(frontend)) break;
    if (std::holds_alternative<proto::Sync>(frontend)) {
      skipping_to_sync = false;
      std::string ready;
      proto::encode(proto::ReadyForQuery{'I'}, ready);
      co_await write_client(std::move(ready));
      continue;
    }
    const bool extended = std::holds_alternative<proto::Parse>(frontend) ||
                          std::holds_alternative<proto::Bind>(frontend) ||
                          std::holds_alternative<proto::Describe>(frontend) ||
                          std::holds_alternative<proto::Execute>(frontend) ||
                          std::holds_alternative<proto::Close>(frontend) ||
                          std::holds_alternative<proto::Flush>(frontend);
    const bool function_call = std::holds_alternative<proto::FunctionCall>(frontend);
    if (extended || function_call) {
      if (skipping_to_sync) continue;
      std::string refusal;
      console::encode_error("ERROR", "0A000",
                            "the pgflip admin console supports only the simple query protocol", {},
                            "use psql, or a driver's simple-query mode", refusal);
      if (function_call) {
        proto::encode(proto::ReadyForQuery{'I'}, refusal);  // no Sync follows a FunctionCall
      } else {
        skipping_to_sync = true;
      }
      co_await write_client(std::move(refusal));
      continue;
    }
    if (std::holds_alternative<proto::CopyData>(frontend) ||
        std::holds_alternative<proto::CopyDone>(frontend) ||
        std::holds_alternative<proto::CopyFail>(frontend)) {
      continue;  // no COPY is ever started: ignored, as a server ignores them outside COPY
    }
    std::string violation = proto::encode_error(
        "FATAL", "08P01", "protocol violation: unexpected message on the admin console");
    co_await write_client(std::move(violation));
    why = "protocol violation: unexpected message";
    break;
  }
  set_state(State::kClosing);
  error_code ignored;
  client_.shutdown(tcp::socket::shutdown_both, ignored);
  client_.close(ignored);
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  log::info(log_conn(), "{} console closed after {:.3f}s: {}", peer_, seconds, why);
}

awaitable<void> Session::run_console_query(std::string_view text) {
  std::string out;
  auto parsed = console::parse(text);
  if (auto* error = std::get_if<console::ParseError>(&parsed)) {
    console::encode_error("ERROR", "42601", error->message, {}, error->hint, out);
  } else if (auto& commands = std::get<std::vector<console::Command>>(parsed); commands.empty()) {
    proto::encode(proto::EmptyQueryResponse{}, out);
  } else {
    const std::string& user = *startup_message_.find("user");
    for (const console::Command& command : commands) {
      if (!command.read_only && !console_admin_) {
        console::encode_error("ERROR", "42501",
                              "permission denied: " + command.display + " needs an admin user",
                              "user \"" + user + "\" is in auth.stats_users, not auth.admin_users",
                              "stats users may run SHOW commands only", out);
        break;
      }
      AdminReply reply;
      if (command.kind == console::Command::Kind::kHelp) {
        AdminServer* admin = context_.admin;
        reply = console::help(
            [admin](std::string_view name) { return admin != nullptr && admin->has(name); });
      } else {
        reply = co_await console_call(command, out);
      }
      if (reply.ok) {
        const std::string column =
            command.tag == "SHOW" ? command.admin_command : lower(command.tag);
        console::encode_result(console::result_set(reply, column), command.tag, out);
        continue;
      }
      std::string message = reply.error_message;
      std::string hint;
      if (reply.error_code == "unknown_command") {
        message = command.documented ? command.display + " is not available in this pgflip (no \"" +
                                           command.admin_command + "\" admin command)"
                                     : "unrecognized console command \"" + command.display + "\"";
        hint = "SHOW HELP lists the console's commands";
      }
      std::string detail = reply.text;
      while (!detail.empty() && detail.back() == '\n') detail.pop_back();
      if (detail == message) detail.clear();
      console::encode_error("ERROR", console::sqlstate_for(reply.error_code, command.documented),
                            message, detail, hint, out);
      break;  // as PostgreSQL: the rest of a multi-statement query does not run
    }
  }
  proto::encode(proto::ReadyForQuery{'I'}, out);
  co_await write_client(std::move(out));
}

awaitable<AdminReply> Session::console_call(const console::Command& command, std::string& out) {
  AdminServer* admin = context_.admin;
  if (admin == nullptr) {
    co_return AdminReply::failure("shutting_down", "the admin command table is not available");
  }
  auto call = std::make_shared<ConsoleCall>();
  // The command's thread wakes this coroutine through the session's own executor.
  auto wake = [weak = weak_from_this(), executor = client_.get_executor()] {
    asio::post(executor, [weak] {
      if (auto self = weak.lock()) self->console_event_.notify();
    });
  };
  AdminEmit emit = [call, wake](std::string_view, std::string_view text, const json::value&) {
    {
      std::lock_guard lock(call->mutex);
      call->notices.emplace_back(text);
    }
    wake();
  };
  auto done = [call, wake](AdminReply reply) {
    {
      std::lock_guard lock(call->mutex);
      call->reply = std::move(reply);
    }
    wake();
  };
  AdminRequest request;
  request.command = command.admin_command;
  request.args = command.args;
  const std::string origin =
      "console c" + std::to_string(id_) + " user=" + *startup_message_.find("user");
  if (!admin->call_async(std::move(request), std::move(emit), origin, std::move(done))) {
    co_return AdminReply::failure("shutting_down", "pgflip is shutting down");
  }
  for (;;) {
    console_event_.reset();
    std::vector<std::string> notices;
    std::optional<AdminReply> reply;
    {
      std::lock_guard lock(call->mutex);
      notices.swap(call->notices);
      reply.swap(call->reply);
    }
    for (const std::string& notice : notices) console::encode_notice(notice, out);
    if (reply) co_return std::move(*reply);
    // Earlier results and these notices reach the client while the command runs on.
    if (!out.empty()) {
      std::string bytes = std::move(out);
      out.clear();
      co_await write_client(std::move(bytes));
    }
    co_await console_event_.wait();
  }
}

}  // namespace pgflip::proxy
