// Logging in to a PostgreSQL server, sans IO: fed the server's messages, answers with the
// bytes to send, the logged-in connection's state, or why the login failed.
//
// https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/messages.hpp"
#include "protocol/scram.hpp"

namespace pgflip::protocol {

/// A client's SCRAM keys, recovered while authenticating it: enough to log in to a server
/// whose role has the same SCRAM secret, without knowing the password.
struct ScramPassThrough {
  ScramKey client_key{};
  ScramKey server_key{};
};

/// Who logs in, with which secrets, and how failures name the server.
struct ServerAuthSettings {
  std::string user;
  std::string database;
  /// Every other startup parameter (application_name, options, ...), sent in this order.
  std::vector<std::pair<std::string, std::string>> parameters;
  std::string password;  // may be empty: then only trust (or the two below) works
  /// Used before `password` when the server asks for SCRAM-SHA-256.
  std::optional<ScramPassThrough> scram_keys;
  /// "md5..." secret of `user`; used before `password` when the server asks for MD5.
  std::string md5_secret;
  /// The tls-server-end-point hash of the server's certificate when the connection is TLS,
  /// else empty: SCRAM binds to it (SCRAM-SHA-256-PLUS) when the server offers that.
  std::string tls_server_end_point;
  /// For messages only: the server ("blue (db1:5432)") and the setting that holds the
  /// password pgflip would need ("blue.password").
  std::string server_name;
  std::string password_setting;
};

/// Send `bytes` (none when empty), then feed the server's next message.
struct ServerAuthSend {
  std::string bytes;
};

/// The server is ready for queries (it sent ReadyForQuery).
struct ServerAuthDone {
  /// ParameterStatus, in the order first reported (a repeated name keeps its last value).
  std::vector<std::pair<std::string, std::string>> parameters;
  std::int32_t process_id = 0;  // BackendKeyData
  std::int32_t secret_key = 0;
  char transaction_status = ReadyForQuery::kIdle;
  std::string notices;  // NoticeResponse messages after AuthenticationOk, as wire bytes
};

/// The login failed; the connection should be closed.
struct ServerAuthError {
  std::string sqlstate;
  std::string message;  // for the client
  std::string reason;   // for the log; never contains a secret
  /// The server's own refusal (bad password, unknown database, too many clients): the client
  /// should see it as it is.
  std::optional<ErrorResponse> server_error;

  /// The whole ErrorResponse message for the client: the server's own, else pgflip's (FATAL).
  [[nodiscard]] std::string error_response() const;
};

using ServerAuthStep = std::variant<ServerAuthSend, ServerAuthDone, ServerAuthError>;

/// One login, from the StartupMessage to ReadyForQuery, with whatever the server asks: trust,
/// cleartext, MD5 or SCRAM-SHA-256[-PLUS]. The caller does the IO:
///   send startup_message(); then per message from the server, feed() it and act on the step,
///   until a ServerAuthDone or a ServerAuthError (after which nothing more may be fed).
/// Crypto failures inside OpenSSL (not caused by input) throw std::runtime_error.
class ServerAuth {
 public:
  explicit ServerAuth(ServerAuthSettings settings);

  /// The StartupMessage (protocol 3.0) with user, database and the other parameters.
  [[nodiscard]] std::string startup_message() const;

  [[nodiscard]] ServerAuthStep feed(const BackendMessage& message);

 private:
  enum class State {
    kAuthenticating,  // waits for an authentication request or AuthenticationOk
    kAuthenticated,   // AuthenticationOk seen: waits for parameters, key data, ReadyForQuery
    kEnded,           // done or failed: nothing more may be fed
  };

  [[nodiscard]] ServerAuthStep authenticate(const Authentication& request);
  [[nodiscard]] ServerAuthStep start_scram(const Authentication& request);
  [[nodiscard]] ServerAuthStep fail(std::string sqlstate, std::string message, std::string reason);
  [[nodiscard]] ServerAuthStep unexpected(const BackendMessage& message);
  [[nodiscard]] ServerAuthStep no_password();

  ServerAuthSettings settings_;
  State state_ = State::kAuthenticating;
  std::optional<ScramSha256Client> scram_;
  ServerAuthDone login_;
};

}  // namespace pgflip::protocol
