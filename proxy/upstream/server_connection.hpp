// Opening and authenticating pgflip's connections to a PostgreSQL server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "protocol/messages.hpp"
#include "protocol/server_auth.hpp"
#include "protocol/startup.hpp"
#include "proxy/base/asio.hpp"
#include "proxy/base/stream.hpp"

namespace pgflip::proxy {

using protocol::ScramPassThrough;

/// Which server and as whom: built from an environment's config and the client's startup.
struct ServerTarget {
  std::string environment;  // "blue" or "green", for logs and errors
  std::string host;         // host name, address, or Unix-socket directory ('/...')
  std::uint16_t port = 5432;
  std::string user;
  std::string password;  // may be empty: then only trust (or the two below) works
  /// Used before `password` when the server asks for SCRAM-SHA-256.
  std::optional<ScramPassThrough> scram_keys;
  /// "md5..." secret of `user`; used before `password` when the server asks for MD5.
  std::string md5_secret;
  std::string database;
  /// TLS as libpq's sslmode; never over a Unix socket. `tls` is the environment's context
  /// (without one, prefer means plain and the stricter modes fail).
  config::SslMode sslmode = config::SslMode::kDisable;
  std::shared_ptr<ssl::context> tls;
  /// Every other startup parameter the client sent (application_name, options, ...).
  std::vector<std::pair<std::string, std::string>> parameters;
};

/// A logged-in server connection, ready for queries.
struct ServerLogin {
  ServerStream socket;
  std::vector<std::pair<std::string, std::string>> parameters;  // ParameterStatus, in order
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
  char transaction_status = 'I';
  std::string notices;  // NoticeResponse messages received during login, as wire bytes
};

/// Why a login failed, and what the client should be told.
struct ServerLoginError {
  /// A whole ErrorResponse message for the client: the server's own, or pgflip's.
  std::string error_message;
  std::string reason;  // for the log; never contains a secret
};

using ServerLoginResult = std::variant<ServerLogin, ServerLoginError>;

/// Connects (bounded by `connect_timeout`) and logs in with whatever the server asks:
/// trust, cleartext, MD5 or SCRAM-SHA-256 (protocol::ServerAuth). The caller bounds the whole
/// call.
[[nodiscard]] awaitable<ServerLoginResult> connect_and_login(
    const ServerTarget& target, std::chrono::milliseconds connect_timeout);

/// Opens a connection to `host:port` (or the Unix socket in directory `host`).
[[nodiscard]] awaitable<std::pair<error_code, StreamSocket>> connect_server(
    const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout);

/// Reads one whole backend message (at most `max_size` bytes), keeping any extra bytes in
/// `buffer`; a string says why it could not.
[[nodiscard]] awaitable<std::variant<protocol::BackendMessage, std::string>> read_backend_message(
    ServerStream& socket, std::string& buffer, std::size_t max_size = std::size_t{1024} * 1024);

/// Sends a CancelRequest for (process_id, secret_key) to a server; best effort. `conn_id` is
/// the client session it is for (logs).
awaitable<void> send_cancel_request(std::string host, std::uint16_t port, std::int32_t process_id,
                                    std::int32_t secret_key, std::chrono::milliseconds timeout,
                                    std::uint64_t conn_id);

}  // namespace pgflip::proxy
