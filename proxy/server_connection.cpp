// Opening and authenticating pgflip's connections to a PostgreSQL server.
#include "proxy/server_connection.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <optional>

#include "protocol/md5.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;
using namespace asio::experimental::awaitable_operators;

namespace {

// Server messages during login are small; a cap protects against a confused peer.
constexpr std::size_t kMaxLoginMessageSize = 1024 * 1024;

ServerLoginError login_error(std::string_view sqlstate, std::string message, std::string reason) {
  return ServerLoginError{proto::encode_error("FATAL", sqlstate, message), std::move(reason)};
}

/// Reads one whole backend message, keeping any extra bytes in `buffer`.
awaitable<std::variant<proto::BackendMessage, std::string>> read_backend_message(
    StreamSocket& socket, std::string& buffer) {
  std::array<char, 4096> chunk{};
  for (;;) {
    auto result = proto::decode_backend(buffer, kMaxLoginMessageSize);
    if (auto* decoded = std::get_if<proto::Decoded<proto::BackendMessage>>(&result)) {
      proto::BackendMessage message = std::move(decoded->message);
      buffer.erase(0, decoded->consumed);
      co_return message;
    }
    if (auto* error = std::get_if<proto::DecodeError>(&result)) {
      co_return "invalid message from server: " + error->detail;
    }
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(chunk), use_nothrow);
    if (ec) co_return "server closed the connection during login: " + ec.message();
    buffer.append(chunk.data(), n);
  }
}

awaitable<error_code> write_all(StreamSocket& socket, const std::string& bytes) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes), use_nothrow);
  (void)n;
  co_return ec;
}

std::vector<std::string> parse_mechanisms(std::string_view data) {
  std::vector<std::string> names;
  while (!data.empty() && data.front() != '\0') {
    const auto end = data.find('\0');
    if (end == std::string_view::npos) break;
    names.emplace_back(data.substr(0, end));
    data.remove_prefix(end + 1);
  }
  return names;
}

}  // namespace

awaitable<std::pair<error_code, StreamSocket>> connect_server(const std::string& host,
                                                              std::uint16_t port,
                                                              std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  StreamSocket socket(executor);
  asio::steady_timer timer(executor);
  timer.expires_after(timeout);

  if (!host.empty() && host.front() == '/') {
    const std::string path = host + "/.s.PGSQL." + std::to_string(port);
    asio::local::stream_protocol::socket local(executor);
    auto result =
        co_await (local.async_connect(asio::local::stream_protocol::endpoint(path), use_nothrow) ||
                  timer.async_wait(use_nothrow));
    if (result.index() == 1)
      co_return std::pair{error_code(asio::error::timed_out), std::move(socket)};
    auto [ec] = std::get<0>(result);
    if (ec) co_return std::pair{ec, std::move(socket)};
    co_return std::pair{error_code{}, StreamSocket(std::move(local))};
  }

  tcp::resolver resolver(executor);
  auto resolved = co_await (resolver.async_resolve(host, std::to_string(port), use_nothrow) ||
                            timer.async_wait(use_nothrow));
  if (resolved.index() == 1)
    co_return std::pair{error_code(asio::error::timed_out), std::move(socket)};
  auto [rec, endpoints] = std::get<0>(resolved);
  if (rec) co_return std::pair{rec, std::move(socket)};

  tcp::socket tcp_socket(executor);
  auto connected = co_await (asio::async_connect(tcp_socket, endpoints, use_nothrow) ||
                             timer.async_wait(use_nothrow));
  if (connected.index() == 1)
    co_return std::pair{error_code(asio::error::timed_out), std::move(socket)};
  auto [cec, endpoint] = std::get<0>(connected);
  (void)endpoint;
  if (cec) co_return std::pair{cec, std::move(socket)};
  error_code ignored;
  tcp_socket.set_option(tcp::no_delay(true), ignored);
  co_return std::pair{error_code{}, StreamSocket(std::move(tcp_socket))};
}

awaitable<ServerLoginResult> connect_and_login(const ServerTarget& target,
                                               std::chrono::milliseconds connect_timeout) {
  auto [cec, socket] = co_await connect_server(target.host, target.port, connect_timeout);
  const std::string where =
      target.environment + " (" + target.host + ":" + std::to_string(target.port) + ")";
  if (cec) {
    co_return login_error("08006", "pgflip could not connect to server " + where,
                          "connect to " + where + " failed: " + cec.message());
  }

  proto::StartupMessage startup;
  startup.parameters.emplace_back("user", target.user);
  startup.parameters.emplace_back("database", target.database);
  for (const auto& parameter : target.parameters) startup.parameters.push_back(parameter);
  std::string out;
  proto::encode(startup, out);
  if (auto ec = co_await write_all(socket, out)) {
    co_return login_error("08006", "pgflip lost the connection to server " + where,
                          "write startup to " + where + ": " + ec.message());
  }

  std::string buffer;
  std::optional<proto::ScramSha256Client> scram;
  ServerLogin login{std::move(socket), {}, 0, 0, 'I', {}};
  bool authenticated = false;
  for (;;) {
    auto next = co_await read_backend_message(login.socket, buffer);
    if (auto* failure = std::get_if<std::string>(&next)) {
      co_return login_error("08006", "pgflip lost the connection to server " + where, *failure);
    }
    auto& message = std::get<proto::BackendMessage>(next);

    if (auto* error = std::get_if<proto::ErrorResponse>(&message)) {
      // The server's own refusal (bad password, unknown database, too many clients)
      // is what the client should see.
      std::string bytes;
      proto::encode(*error, bytes);
      co_return ServerLoginError{std::move(bytes),
                                 where + " refused login: " + std::string(error->code()) + " " +
                                     std::string(error->message())};
    }
    if (auto* auth = std::get_if<proto::Authentication>(&message)) {
      out.clear();
      switch (auth->code) {
        case 0:  // AuthenticationOk
          authenticated = true;
          continue;
        case 3:  // AuthenticationCleartextPassword
          if (target.password.empty()) break;
          proto::encode_password(target.password, out);
          break;
        case 5: {  // AuthenticationMD5Password
          if (target.password.empty() || auth->data.size() != 4) break;
          std::array<std::uint8_t, 4> salt{};
          for (std::size_t i = 0; i < 4; ++i) salt[i] = static_cast<std::uint8_t>(auth->data[i]);
          proto::encode_password(proto::md5_password_response(target.user, target.password, salt),
                                 out);
          break;
        }
        case 10: {  // AuthenticationSASL
          if (target.password.empty()) break;
          bool offered = false;
          for (const auto& name : parse_mechanisms(auth->data)) offered |= name == "SCRAM-SHA-256";
          if (!offered) {
            co_return login_error("08P01",
                                  "server " + where + " offers no SASL mechanism pgflip supports",
                                  "no SCRAM-SHA-256 in SASL mechanisms");
          }
          scram.emplace(target.password);
          proto::encode(proto::SASLInitialResponse{"SCRAM-SHA-256", scram->client_first_message()},
                        out);
          break;
        }
        case 11: {  // AuthenticationSASLContinue
          if (!scram) break;
          auto reply = scram->handle_server_first(auth->data);
          if (auto* error = std::get_if<proto::ScramError>(&reply)) {
            co_return login_error("28000", "SCRAM authentication with server " + where + " failed",
                                  "SCRAM: " + error->message);
          }
          proto::encode_sasl_response(std::get<std::string>(reply), out);
          break;
        }
        case 12:  // AuthenticationSASLFinal
          if (!scram) break;
          if (auto error = scram->verify_server_final(auth->data)) {
            co_return login_error("28000",
                                  "server " + where + " failed SCRAM verification (wrong server?)",
                                  "SCRAM final: " + error->message);
          }
          continue;
        default:
          co_return login_error(
              "08P01",
              "server " + where + " asked for an authentication method pgflip does not support",
              "unsupported authentication request " + std::to_string(auth->code));
      }
      if (out.empty()) {
        co_return login_error("28000",
                              "server " + where + " asked for a password for user \"" +
                                  target.user + "\" and pgflip has none (set " +
                                  target.environment + ".password)",
                              "no password configured for " + where);
      }
      if (auto ec = co_await write_all(login.socket, out)) {
        co_return login_error("08006", "pgflip lost the connection to server " + where,
                              "write auth to " + where + ": " + ec.message());
      }
      continue;
    }
    if (!authenticated) {
      co_return login_error("08P01", "server " + where + " sent an unexpected message during login",
                            "unexpected message before AuthenticationOk");
    }
    if (auto* status = std::get_if<proto::ParameterStatus>(&message)) {
      login.parameters.emplace_back(status->name, status->value);
    } else if (auto* key = std::get_if<proto::BackendKeyData>(&message)) {
      login.process_id = key->process_id;
      login.secret_key = key->secret_key;
    } else if (auto* notice = std::get_if<proto::NoticeResponse>(&message)) {
      proto::encode(*notice, login.notices);
    } else if (auto* ready = std::get_if<proto::ReadyForQuery>(&message)) {
      login.transaction_status = ready->status;
      if (!buffer.empty()) {
        co_return login_error("08P01", "server " + where + " sent data after ReadyForQuery",
                              "unexpected bytes after login");
      }
      co_return std::move(login);
    } else if (std::holds_alternative<proto::NegotiateProtocolVersion>(message)) {
      continue;  // pgflip asks for 3.0, which every supported server speaks
    } else {
      co_return login_error("08P01", "server " + where + " sent an unexpected message during login",
                            "unexpected message during login");
    }
  }
}

awaitable<void> send_cancel_request(std::string host, std::uint16_t port, std::int32_t process_id,
                                    std::int32_t secret_key, std::chrono::milliseconds timeout) {
  auto [ec, socket] = co_await connect_server(host, port, timeout);
  if (ec) {
    spdlog::warn("cancel request to {}:{} not delivered: {}", host, port, ec.message());
    co_return;
  }
  std::string out;
  proto::encode(proto::CancelRequest{process_id, secret_key}, out);
  co_await write_all(socket, out);
  // The server closes the connection once it has read the request; waiting for that
  // makes sure the request arrived before we report the cancel as sent.
  std::array<char, 16> sink{};
  asio::steady_timer timer(socket.get_executor());
  timer.expires_after(timeout);
  co_await (socket.async_read_some(asio::buffer(sink), use_nothrow) ||
            timer.async_wait(use_nothrow));
}

}  // namespace pgflip::proxy
