// A session whose client logs in to admin.console_database: the console's greeting, then the
// client lent to the admin console (ConsolePort, served by the admin layer).

#include <algorithm>
#include <utility>

#include "protocol/messages.hpp"
#include "proxy/session/console_port.hpp"
#include "proxy/session/session.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;

namespace {

bool listed(const std::vector<std::string>& users, const std::string& user) {
  return std::find(users.begin(), users.end(), user) != users.end();
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
  std::string why = "the admin console is not available";
  if (ConsolePort* console = context_.console) {
    // A named local lent by reference: passed to the coroutine as a by-value temporary, GCC 12
    // freed one of its strings twice (free(): invalid size, seen in the console tests).
    ConsoleClient client{client_,
                         [this](std::string bytes) { return write_client(std::move(bytes)); },
                         std::exchange(client_pending_, {}),
                         *startup_message_.find("user"),
                         console_admin_,
                         id_,
                         config_->server.max_message_size,
                         log_conn(),
                         shutdown_requested_};
    why = co_await console->serve(client);
  }
  set_state(State::kClosing);
  error_code ignored;
  client_.shutdown(tcp::socket::shutdown_both, ignored);
  client_.close(ignored);
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  log::info(log_conn(), "{} console closed after {:.3f}s: {}", peer_, seconds, why);
}

}  // namespace pgflip::proxy
