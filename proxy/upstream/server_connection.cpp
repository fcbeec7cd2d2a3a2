// Opening and authenticating pgflip's connections to a PostgreSQL server.
#include "proxy/upstream/server_connection.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <optional>

#include "protocol/md5.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"
#include "proxy/base/tls.hpp"
#include "proxy/observe/log.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;
using namespace asio::experimental::awaitable_operators;

namespace {

// Server messages during login are small; a cap protects against a confused peer.
constexpr std::size_t kMaxLoginMessageSize = 1024 * 1024;

ServerLoginError login_error(std::string_view sqlstate, std::string message, std::string reason) {
  return ServerLoginError{proto::encode_error("FATAL", sqlstate, message), std::move(reason)};
}

template <class Stream>
awaitable<error_code> write_all(Stream& socket, const std::string& bytes) {
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

/// Asks the server for TLS (SSLRequest) and does the handshake, as `target.sslmode` says.
/// Returns an empty string when the connection may go on (in TLS or, for prefer, plain).
awaitable<std::optional<ServerLoginError>> negotiate_tls(ServerStream& stream,
                                                         const ServerTarget& target,
                                                         const std::string& where) {
  using config::SslMode;
  const bool required = target.sslmode != SslMode::kPrefer;
  if (target.sslmode == SslMode::kDisable || (!target.host.empty() && target.host.front() == '/')) {
    co_return std::nullopt;
  }
  if (!target.tls) {
    if (!required) co_return std::nullopt;
    co_return login_error("08006", "pgflip has no TLS settings for server " + where,
                          "no TLS context for " + target.environment);
  }
  std::string out;
  proto::encode(proto::SSLRequest{}, out);
  if (auto ec = co_await write_all(stream, out)) {
    co_return login_error("08006", "pgflip lost the connection to server " + where,
                          "write SSLRequest to " + where + ": " + ec.message());
  }
  // Exactly one byte: anything after 'S' belongs to the TLS handshake, and a server that
  // sends more in the clear is not to be trusted with it.
  std::array<char, 1> answer{};
  auto [rec, rn] = co_await asio::async_read(stream, asio::buffer(answer), use_nothrow);
  (void)rn;
  if (rec) {
    co_return login_error("08006", "pgflip lost the connection to server " + where,
                          "reading the answer to SSLRequest from " + where + ": " + rec.message());
  }
  if (answer[0] == 'N') {
    if (!required) co_return std::nullopt;
    co_return login_error("08006",
                          "server " + where + " does not support TLS, but " + target.environment +
                              ".sslmode is " + std::string(config::to_string(target.sslmode)),
                          "server refused TLS");
  }
  if (answer[0] != 'S') {
    co_return login_error("08P01", "server " + where + " answered SSLRequest with garbage",
                          "unexpected answer to SSLRequest");
  }
  stream.start_tls(*target.tls);
  if (!prepare_server_tls(stream.native_tls(), target.host, target.sslmode)) {
    co_return login_error("08006", "pgflip could not set up TLS for server " + where,
                          "TLS setup: " + openssl_error_text());
  }
  auto [hec] = co_await stream.tls().async_handshake(ssl::stream_base::client, use_nothrow);
  if (hec) {
    std::string reason = hec.message();
    const long verify = SSL_get_verify_result(stream.native_tls());
    if (verify != X509_V_OK) {
      reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      reason += ": the server's certificate does not name " + target.host + " (" +
                target.environment +
                ".host, checked by sslmode verify-full); connect by a name "
                "the certificate carries, or use sslmode verify-ca";
    }
    co_return login_error("08006", "TLS handshake with server " + where + " failed: " + reason,
                          "TLS handshake with " + where + ": " + reason);
  }
  co_return std::nullopt;
}

/// The tls-server-end-point hash of the server's certificate, or empty.
std::string server_end_point(ServerStream& stream) {
  if (!stream.is_tls()) return {};
  X509* certificate = SSL_get1_peer_certificate(stream.native_tls());
  if (certificate == nullptr) return {};
  std::string hash = tls_server_end_point(certificate);
  X509_free(certificate);
  return hash;
}

}  // namespace

awaitable<std::variant<proto::BackendMessage, std::string>> read_backend_message(
    ServerStream& socket, std::string& buffer, std::size_t max_size) {
  std::array<char, 4096> chunk{};
  for (;;) {
    auto result = proto::decode_backend(buffer, max_size);
    if (auto* decoded = std::get_if<proto::Decoded<proto::BackendMessage>>(&result)) {
      proto::BackendMessage message = std::move(decoded->message);
      buffer.erase(0, decoded->consumed);
      co_return message;
    }
    if (auto* error = std::get_if<proto::DecodeError>(&result)) {
      co_return "invalid message from server: " + error->detail;
    }
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(chunk), use_nothrow);
    if (ec) co_return "server closed the connection: " + ec.message();
    buffer.append(chunk.data(), n);
  }
}

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
  auto [cec, plain_socket] = co_await connect_server(target.host, target.port, connect_timeout);
  const std::string where =
      target.environment + " (" + target.host + ":" + std::to_string(target.port) + ")";
  if (cec) {
    co_return login_error("08006", "pgflip could not connect to server " + where,
                          "connect to " + where + " failed: " + cec.message());
  }
  ServerStream socket(std::move(plain_socket));
  if (auto failure = co_await negotiate_tls(socket, target, where)) co_return std::move(*failure);

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
    auto next = co_await read_backend_message(login.socket, buffer, kMaxLoginMessageSize);
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
          if (auth->data.size() != 4) break;
          std::array<std::uint8_t, 4> salt{};
          for (std::size_t i = 0; i < 4; ++i) salt[i] = static_cast<std::uint8_t>(auth->data[i]);
          if (!target.md5_secret.empty()) {
            proto::encode_password(proto::md5_response_from_secret(target.md5_secret, salt), out);
          } else if (!target.password.empty()) {
            proto::encode_password(proto::md5_password_response(target.user, target.password, salt),
                                   out);
          }
          break;
        }
        case 10: {  // AuthenticationSASL
          if (target.password.empty() && !target.scram_keys) break;
          bool offered = false;
          bool offered_plus = false;
          for (const auto& name : parse_mechanisms(auth->data)) {
            offered |= name == proto::kScramSha256;
            offered_plus |= name == proto::kScramSha256Plus;
          }
          if (!offered && !offered_plus) {
            co_return login_error("08P01",
                                  "server " + where + " offers no SASL mechanism pgflip supports",
                                  "no SCRAM-SHA-256 in SASL mechanisms");
          }
          // The client's own keys first (pass-through), as they prove who the client is.
          if (target.scram_keys) {
            scram.emplace(proto::ScramSha256Client::from_keys(target.scram_keys->client_key,
                                                              target.scram_keys->server_key));
          } else {
            scram.emplace(target.password);
          }
          // Over TLS, bind the exchange to the server's certificate when it offers that,
          // and otherwise say we could have (so a downgrade is detectable), as libpq does.
          if (const std::string hash = server_end_point(login.socket); !hash.empty()) {
            if (offered_plus) {
              scram->set_channel_binding(std::string(proto::kTlsServerEndPoint), hash);
            } else {
              scram->set_channel_binding_supported();
            }
          } else if (!offered) {
            co_return login_error("08P01",
                                  "server " + where +
                                      " offers only SCRAM-SHA-256-PLUS, which "
                                      "needs TLS",
                                  "SCRAM-SHA-256-PLUS without TLS");
          }
          proto::encode(proto::SASLInitialResponse{std::string(scram->mechanism()),
                                                   scram->client_first_message()},
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
                                    std::int32_t secret_key, std::chrono::milliseconds timeout,
                                    std::uint64_t conn_id) {
  auto [ec, plain] = co_await connect_server(host, port, timeout);
  ServerStream socket(std::move(plain));
  if (ec) {
    log::warn(log::Conn{conn_id}, "cancel request to {}:{} not delivered: {}", host, port,
              ec.message());
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
