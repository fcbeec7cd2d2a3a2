// Opening and authenticating pgflip's connections to a PostgreSQL server.
#include "proxy/upstream/server_connection.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <optional>

#include "protocol/messages.hpp"
#include "protocol/server_auth.hpp"
#include "proxy/base/read_message.hpp"
#include "proxy/base/tls.hpp"
#include "proxy/observe/log.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;
using namespace asio::experimental::awaitable_operators;

namespace {

// Server messages during login are small; a cap protects against a confused peer.
constexpr std::size_t kMaxLoginMessageSize = std::size_t{1024} * 1024;

ServerLoginError login_error(std::string_view sqlstate, const std::string& message,
                             std::string reason) {
  return ServerLoginError{proto::encode_error("FATAL", sqlstate, message), std::move(reason)};
}

template <class Stream>
awaitable<error_code> write_all(Stream& socket, const std::string& bytes) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes), use_nothrow);
  (void)n;
  co_return ec;
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
  auto read = co_await read_message(socket, buffer, [max_size](std::string_view bytes) {
    return proto::decode_backend(bytes, max_size);
  });
  if (auto* error = std::get_if<proto::DecodeError>(&read)) {
    co_return "invalid message from server: " + error->detail;
  }
  if (auto* ec = std::get_if<error_code>(&read)) {
    co_return "server closed the connection: " + ec->message();
  }
  co_return std::move(std::get<proto::BackendMessage>(read));
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

  proto::ServerAuth auth(proto::ServerAuthSettings{
      target.user, target.database, target.parameters, target.password, target.scram_keys,
      target.md5_secret, server_end_point(socket), where, target.environment + ".password"});
  if (auto ec = co_await write_all(socket, auth.startup_message())) {
    co_return login_error("08006", "pgflip lost the connection to server " + where,
                          "write startup to " + where + ": " + ec.message());
  }
  std::string buffer;
  for (;;) {
    auto next = co_await read_backend_message(socket, buffer, kMaxLoginMessageSize);
    if (auto* failure = std::get_if<std::string>(&next)) {
      co_return login_error("08006", "pgflip lost the connection to server " + where, *failure);
    }
    auto step = auth.feed(std::get<proto::BackendMessage>(next));
    if (auto* error = std::get_if<proto::ServerAuthError>(&step)) {
      co_return ServerLoginError{error->error_response(), std::move(error->reason)};
    }
    if (auto* done = std::get_if<proto::ServerAuthDone>(&step)) {
      if (!buffer.empty()) {
        co_return login_error("08P01", "server " + where + " sent data after ReadyForQuery",
                              "unexpected bytes after login");
      }
      co_return ServerLogin{std::move(socket),        std::move(done->parameters),
                            done->process_id,         done->secret_key,
                            done->transaction_status, std::move(done->notices)};
    }
    const std::string& out = std::get<proto::ServerAuthSend>(step).bytes;
    if (out.empty()) continue;
    if (auto ec = co_await write_all(socket, out)) {
      co_return login_error("08006", "pgflip lost the connection to server " + where,
                            "write auth to " + where + ": " + ec.message());
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
