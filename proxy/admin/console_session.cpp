// The admin console's sessions: a client logged in to admin.console_database talks to pgflip
// itself, through the admin command table (on threads of their own: commands may block).
#include "proxy/admin/console_session.hpp"

#include <mutex>
#include <optional>
#include <vector>

#include "protocol/messages.hpp"
#include "proxy/base/event.hpp"
#include "proxy/base/read_message.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;
namespace json = boost::json;

namespace {

/// What an admin command running on its own thread hands back to the console session. The
/// command's thread may hold it last, so it owns nothing of the session's executor.
struct ConsoleCall {
  std::mutex mutex;
  std::vector<std::string> notices;
  std::optional<AdminReply> reply;
  Event* event = nullptr;  // the waiting coroutine's; read and written on its executor only
};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

awaitable<std::string> ConsoleService::serve(ConsoleClient& client) {
  std::string buffer = std::move(client.pending);
  // After a refused extended-protocol message everything up to the next Sync is discarded,
  // as a server does after an error.
  bool skipping_to_sync = false;
  std::string why = "client terminated";
  for (;;) {
    if (client.shutdown_requested) {
      std::string bye = proto::encode_error(
          "FATAL", "57P01", "terminating connection because pgflip is shutting down");
      co_await client.write(std::move(bye));
      why = "pgflip shutting down";
      break;
    }
    auto read = co_await read_message(client.stream, buffer, [&](std::string_view bytes) {
      return proto::decode_frontend(bytes, client.max_message_size);
    });
    if (auto* error = std::get_if<proto::DecodeError>(&read)) {
      std::string reply =
          proto::encode_error("FATAL", "08P01", "protocol violation: " + error->detail);
      co_await client.write(std::move(reply));
      why = "protocol violation: " + error->detail;
      break;
    }
    if (auto* ec = std::get_if<error_code>(&read)) {
      if (*ec == asio::error::operation_aborted && client.shutdown_requested) continue;
      why = "client disconnected";
      break;
    }
    const proto::FrontendMessage frontend = std::move(std::get<proto::FrontendMessage>(read));

    if (const auto* query = std::get_if<proto::Query>(&frontend)) {
      co_await run_query(client, query->query);
      continue;
    }
    if (std::holds_alternative<proto::Terminate>(frontend)) break;
    if (std::holds_alternative<proto::Sync>(frontend)) {
      skipping_to_sync = false;
      std::string ready;
      proto::encode(proto::ReadyForQuery{'I'}, ready);
      co_await client.write(std::move(ready));
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
      co_await client.write(std::move(refusal));
      continue;
    }
    if (std::holds_alternative<proto::CopyData>(frontend) ||
        std::holds_alternative<proto::CopyDone>(frontend) ||
        std::holds_alternative<proto::CopyFail>(frontend)) {
      continue;  // no COPY is ever started: ignored, as a server ignores them outside COPY
    }
    std::string violation = proto::encode_error(
        "FATAL", "08P01", "protocol violation: unexpected message on the admin console");
    co_await client.write(std::move(violation));
    why = "protocol violation: unexpected message";
    break;
  }
  co_return why;
}

awaitable<void> ConsoleService::run_query(ConsoleClient& client, std::string_view text) {
  std::string out;
  auto parsed = console::parse(text);
  if (auto* error = std::get_if<console::ParseError>(&parsed)) {
    console::encode_error("ERROR", "42601", error->message, {}, error->hint, out);
  } else if (auto& commands = std::get<std::vector<console::Command>>(parsed); commands.empty()) {
    proto::encode(proto::EmptyQueryResponse{}, out);
  } else {
    const std::string& user = client.user;
    for (const console::Command& command : commands) {
      if (!command.read_only && !client.admin) {
        console::encode_error("ERROR", "42501",
                              "permission denied: " + command.display + " needs an admin user",
                              "user \"" + user + "\" is in auth.stats_users, not auth.admin_users",
                              "stats users may run SHOW commands only", out);
        break;
      }
      AdminReply reply;
      if (command.kind == console::Command::Kind::kHelp) {
        reply = console::help([this](std::string_view name) { return admin_.has(name); });
      } else {
        reply = co_await call(client, command, out);
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
  co_await client.write(std::move(out));
}

awaitable<AdminReply> ConsoleService::call(ConsoleClient& client, const console::Command& command,
                                           std::string& out) {
  auto call = std::make_shared<ConsoleCall>();
  Event event(client.stream.get_executor());
  call->event = &event;
  struct Detach {  // a wake-up posted after this coroutine ended finds no event
    ConsoleCall& call;
    ~Detach() { call.event = nullptr; }
  } detach{*call};
  // The command's thread wakes this coroutine through the session's own executor.
  auto wake = [call, executor = client.stream.get_executor()] {
    asio::post(executor, [call] {
      if (call->event != nullptr) call->event->notify();
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
      "console c" + std::to_string(client.session_id) + " user=" + client.user;
  if (!admin_.call_async(std::move(request), std::move(emit), origin, std::move(done))) {
    co_return AdminReply::failure("shutting_down", "pgflip is shutting down");
  }
  for (;;) {
    event.reset();
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
      co_await client.write(std::move(bytes));
    }
    co_await event.wait();
  }
}

}  // namespace pgflip::proxy
