// Client authentication: the password exchange pgflip runs with a client before it logs in
// to a server for it (trust, MD5 or SCRAM-SHA-256[-PLUS]), and where secrets come from.
//
// https://www.postgresql.org/docs/current/auth-password.html
// https://www.postgresql.org/docs/current/sasl-authentication.html
#include "proxy/frontdoor/client_auth.hpp"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <variant>

#include "protocol/md5.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"
#include "proxy/base/read_message.hpp"
#include "proxy/base/tls.hpp"
#include "proxy/observe/log.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;

namespace {

// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: no password or SASL message is larger.
constexpr std::size_t kMaxAuthMessageSize = 65535;

struct ClientMessage {
  char type = 0;
  std::string body;
};

/// One typed message from the client; `closed` when the client went away, else `error`
/// says what was wrong with its bytes.
struct ReadResult {
  std::optional<ClientMessage> message;
  bool closed = false;
  std::string error;
};

/// The type byte and body of the typed message at the front of `bytes`.
proto::DecodeResult<ClientMessage> decode_client_message(std::string_view bytes) {
  auto header = proto::decode_header(bytes, kMaxAuthMessageSize);
  if (auto* error = std::get_if<proto::DecodeError>(&header)) return std::move(*error);
  if (auto* decoded = std::get_if<proto::Decoded<proto::Header>>(&header)) {
    const std::size_t size = decoded->message.message_size();
    if (bytes.size() >= size) {
      return proto::Decoded<ClientMessage>{
          ClientMessage{decoded->message.type,
                        std::string(bytes.substr(proto::kHeaderSize, size - proto::kHeaderSize))},
          size};
    }
  }
  return proto::NeedMoreData{};
}

awaitable<ReadResult> read_client_message(ClientStream& client, std::string& pending) {
  auto read = co_await read_message(client, pending, decode_client_message);
  if (auto* error = std::get_if<proto::DecodeError>(&read)) {
    co_return ReadResult{std::nullopt, false, "invalid message: " + error->detail};
  }
  if (auto* ec = std::get_if<error_code>(&read))
    co_return ReadResult{std::nullopt, true, ec->message()};
  co_return ReadResult{std::move(std::get<ClientMessage>(read)), false, {}};
}

awaitable<bool> send(ClientStream& client, const std::string& bytes) {
  auto [ec, n] = co_await asio::async_write(client, asio::buffer(bytes), use_nothrow);
  (void)n;
  co_return !ec;
}

std::string random_bytes(std::size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  return bytes;
}

/// A secret nobody's password matches, with a salt that stays the same for a user name
/// (within this process): a prober cannot tell unknown users from known ones by their
/// salt or by pgflip's answer, as with PostgreSQL's mock authentication.
proto::ScramSecret mock_scram_secret(std::string_view user) {
  static const std::string key = random_bytes(32);
  const proto::ScramKey salt = proto::hmac_sha256(key, user);
  proto::ScramSecret secret;
  secret.iterations = 4096;
  secret.salt.assign(reinterpret_cast<const char*>(salt.data()), 16);
  const std::string stored = random_bytes(32);
  const std::string server = random_bytes(32);
  std::copy(stored.begin(), stored.end(), secret.stored_key.begin());
  std::copy(server.begin(), server.end(), secret.server_key.begin());
  return secret;
}

std::string password_failed(const ClientAuthRequest& request) {
  return "password authentication failed for user \"" + request.user + "\"";
}

/// How an exchange ended: credentials, or the ErrorResponse to send (empty when the client
/// simply went away).
struct Outcome {
  std::optional<ClientCredentials> credentials;
  std::string error;
};

log::Conn log_conn(const ClientAuthRequest& request) {
  return log::Conn{request.session_id, request.peer, request.user, request.database};
}

Outcome refused(const ClientAuthRequest& request, std::string_view sqlstate,
                std::string_view message, std::string_view reason) {
  log::info(log_conn(request), "{} user={} database={} authentication failed: {}", request.peer,
            request.user, request.database, reason);
  return Outcome{std::nullopt, proto::encode_error("FATAL", sqlstate, message)};
}

/// Reads the client's 'p' answer. nullopt: the client left (`failure` empty) or sent
/// something else (`failure` says what).
awaitable<std::optional<std::string>> read_password_message(ClientStream& client,
                                                            std::string& pending,
                                                            const ClientAuthRequest& request,
                                                            std::string& failure) {
  ReadResult read = co_await read_client_message(client, pending);
  if (read.closed) {
    // psql and libpq close when they have no password yet, then ask the user: not an error.
    log::debug(log_conn(request), "{} user={} connection ended during authentication: {}",
               request.peer, request.user, read.error);
    co_return std::nullopt;
  }
  if (!read.message) {
    failure = read.error;
    co_return std::nullopt;
  }
  if (read.message->type != proto::PasswordMessage::kType) {
    if (read.message->type != proto::Terminate::kType) {
      failure = "expected a password response, got message type " +
                proto::printable_type(read.message->type);
    }
    co_return std::nullopt;
  }
  co_return std::move(read.message->body);
}

awaitable<Outcome> scram_exchange(ClientStream& client, std::string& pending,
                                  const ClientAuthRequest& request,
                                  const std::optional<UserSecret>& secret, std::string why_not,
                                  ClientCredentials credentials) {
  // Which SCRAM secret the client is checked against; a mock one when it cannot succeed.
  std::optional<proto::ScramSecret> real;
  if (secret && why_not.empty()) {
    if (secret->kind == UserSecret::Kind::kScram) {
      real = *secret->scram;
    } else if (secret->kind == UserSecret::Kind::kPlaintext) {
      real = request.users ? request.users->scram_for_plaintext(request.user, secret->text)
                           : proto::make_scram_secret(secret->text);
    } else {
      why_not = "the user's secret is an MD5 hash; SCRAM needs a plaintext or SCRAM secret";
    }
  }
  const proto::ScramKey server_key = real ? real->server_key : proto::ScramKey{};
  proto::ScramSha256Server server(real ? std::move(*real) : mock_scram_secret(request.user));
  if (!request.channel_binding.empty()) {
    server.set_channel_binding(std::string(proto::kTlsServerEndPoint), request.channel_binding);
  }

  std::string out;
  proto::encode(proto::make_sasl_authentication(server.mechanisms()), out);
  if (!co_await send(client, out)) co_return Outcome{};

  std::string failure;
  std::optional<std::string> first =
      co_await read_password_message(client, pending, request, failure);
  if (!first) {
    if (failure.empty()) co_return Outcome{};
    co_return refused(request, "08P01", "protocol violation: " + failure, failure);
  }
  const auto initial = proto::parse_sasl_initial_response(*first);
  if (!initial || !initial->data) {
    co_return refused(request, "08P01", "malformed SASLInitialResponse message",
                      "malformed SASLInitialResponse");
  }
  auto server_first = server.handle_client_first(initial->mechanism, *initial->data);
  if (const auto* error = std::get_if<proto::ScramError>(&server_first)) {
    co_return refused(request, "08P01", error->message, "SCRAM: " + error->message);
  }
  out.clear();
  proto::encode(proto::Authentication{proto::Authentication::kSASLContinue,
                                      std::get<std::string>(server_first)},
                out);
  if (!co_await send(client, out)) co_return Outcome{};

  std::optional<std::string> final_message =
      co_await read_password_message(client, pending, request, failure);
  if (!final_message) {
    if (failure.empty()) co_return Outcome{};
    co_return refused(request, "08P01", "protocol violation: " + failure, failure);
  }
  auto server_final = server.handle_client_final(*final_message);
  if (const auto* error = std::get_if<proto::ScramError>(&server_final)) {
    if (error->kind == proto::ScramErrorKind::kAuthenticationFailed) {
      const std::string reason = why_not.empty() ? "wrong password (SCRAM proof)" : why_not;
      co_return refused(request, "28P01", password_failed(request), reason);
    }
    co_return refused(request, "08P01", error->message, "SCRAM: " + error->message);
  }
  if (!why_not.empty() || !server.recovered_client_key()) {
    // Cannot happen with a mock secret's random keys; never let it through regardless.
    co_return refused(request, "28P01", password_failed(request), why_not);
  }
  out.clear();
  proto::encode(
      proto::Authentication{proto::Authentication::kSASLFinal, std::get<std::string>(server_final)},
      out);
  if (!co_await send(client, out)) co_return Outcome{};

  if (secret->kind == UserSecret::Kind::kPlaintext) {
    credentials.password = secret->text;
  } else {
    credentials.scram_keys = ScramPassThrough{*server.recovered_client_key(), server_key};
  }
  log::debug(log_conn(request), "user={} authenticated with {}", request.user, initial->mechanism);
  co_return Outcome{std::move(credentials), {}};
}

awaitable<Outcome> md5_exchange(ClientStream& client, std::string& pending,
                                const ClientAuthRequest& request,
                                const std::optional<UserSecret>& secret, std::string why_not,
                                ClientCredentials credentials) {
  std::string expected;  // the MD5 secret the answer is checked against; empty: none matches
  if (secret && why_not.empty()) {
    expected = secret->kind == UserSecret::Kind::kMd5
                   ? secret->text
                   : proto::md5_secret(request.user, secret->text);
  }
  const std::string salt_bytes = random_bytes(4);
  std::array<std::uint8_t, 4> salt{};
  std::copy(salt_bytes.begin(), salt_bytes.end(), salt.begin());

  std::string out;
  proto::encode(proto::Authentication{proto::Authentication::kMD5Password, salt_bytes}, out);
  if (!co_await send(client, out)) co_return Outcome{};

  std::string failure;
  std::optional<std::string> body =
      co_await read_password_message(client, pending, request, failure);
  if (!body) {
    if (failure.empty()) co_return Outcome{};
    co_return refused(request, "08P01", "protocol violation: " + failure, failure);
  }
  const auto response = proto::parse_password(*body);
  if (!response) {
    co_return refused(request, "08P01", "malformed password message", "malformed password message");
  }
  if (expected.empty() || !proto::verify_md5_response(expected, salt, *response)) {
    const std::string reason = why_not.empty() ? "wrong password (MD5)" : why_not;
    co_return refused(request, "28P01", password_failed(request), reason);
  }
  if (secret->kind == UserSecret::Kind::kPlaintext) {
    credentials.password = secret->text;
  } else {
    credentials.md5_secret = secret->text;
  }
  co_return Outcome{std::move(credentials), {}};
}

/// auth.method = cert: the client's verified certificate must name the user (its CN), as
/// PostgreSQL's `cert` method without a user-name map.
Outcome certificate_check(ClientStream& client, const ClientAuthRequest& request,
                          ClientCredentials credentials) {
  if (!client.is_tls()) {
    return refused(request, "28000", "connection requires a valid client certificate",
                   "auth.method = cert, and the client did not use TLS");
  }
  const std::optional<std::string> name = verified_peer_common_name(client.native_tls());
  if (!name) {
    return refused(request, "28000", "connection requires a valid client certificate",
                   "auth.method = cert, and the client sent no certificate");
  }
  if (*name != request.user) {
    return refused(request, "28000",
                   "certificate authentication failed for user \"" + request.user + "\"",
                   "the certificate's common name is \"" + *name + "\", not the user name");
  }
  return Outcome{std::move(credentials), {}};
}

/// Finds the user's secret (users file, then auth.query) and runs the exchange.
awaitable<Outcome> run_exchange(ClientStream& client, std::string& pending,
                                const ClientAuthRequest& request) {
  const config::AuthSettings& auth = request.config->auth;
  ClientCredentials credentials;
  credentials.admin = std::find(auth.admin_users.begin(), auth.admin_users.end(), request.user) !=
                      auth.admin_users.end();
  if (auth.method == config::AuthMethod::kTrust) co_return Outcome{std::move(credentials), {}};
  if (auth.method == config::AuthMethod::kCert) {
    co_return certificate_check(client, request, std::move(credentials));
  }

  // The users file first, then auth.query on the active server (as PgBouncer).
  std::optional<UserSecret> secret;
  std::string why_not;  // why this user cannot log in whatever it sends: for the log only
  if (request.users) {
    if (const UserSecret* found = request.users->find(request.user)) secret = *found;
  }
  if (!secret && !auth.query_user.empty() && request.lookup_endpoint != nullptr) {
    LookupResult lookup = co_await lookup_user(*request.config, *request.lookup_endpoint,
                                               request.lookup_environment, request.lookup_tls,
                                               request.user, request.database, request.lookup_pool);
    if (!lookup.error.empty()) {
      co_return refused(request, "08006",
                        "pgflip could not look up user \"" + request.user + "\" on the server",
                        "auth.query failed: " + lookup.error);
    }
    secret = std::move(lookup.secret);
    if (!secret) why_not = "no such user (auth.query found no usable secret)";
  }
  if (!secret && why_not.empty()) {
    why_not = request.users ? "no such user in auth.users_file"
                            : "no such user (no auth.users_file, no auth.query_user)";
  }
  if (secret && secret->kind == UserSecret::Kind::kPlaintext && secret->text.empty()) {
    why_not = "the user's password is empty";
  }

  // As PostgreSQL: "md5" uses SCRAM for a user whose secret is a SCRAM secret.
  const bool scram = auth.method == config::AuthMethod::kScramSha256 ||
                     (secret && secret->kind == UserSecret::Kind::kScram);
  Outcome outcome;
  if (scram) {
    outcome = co_await scram_exchange(client, pending, request, secret, std::move(why_not),
                                      std::move(credentials));
  } else {
    outcome = co_await md5_exchange(client, pending, request, secret, std::move(why_not),
                                    std::move(credentials));
  }
  co_return outcome;
}

}  // namespace

awaitable<std::optional<ClientCredentials>> authenticate_client(ClientStream& client,
                                                                std::string& pending,
                                                                const ClientAuthRequest& request) {
  Outcome outcome = co_await run_exchange(client, pending, request);
  if (!outcome.error.empty()) co_await send(client, outcome.error);
  co_return std::move(outcome.credentials);
}

namespace {

/// One auth.query exchange on an open connection. `healthy`: the connection ended at
/// ReadyForQuery and may serve another lookup.
struct Exchange {
  LookupResult result;
  bool healthy = false;
};

awaitable<Exchange> run_lookup(ServerStream& server, const std::string& query,
                               const std::string& user) {
  // The extended protocol keeps the user name a parameter: it never becomes SQL text.
  std::string out;
  proto::encode(proto::Parse{"", query, {}}, out);
  proto::encode(proto::Bind{"", "", {}, {user}, {}}, out);
  proto::encode(proto::Execute{"", 0}, out);
  proto::encode(proto::Sync{}, out);
  Exchange exchange;
  if (auto [ec, n] = co_await asio::async_write(server, asio::buffer(out), use_nothrow); ec) {
    (void)n;
    exchange.result.error = "sending auth.query: " + ec.message();
    co_return exchange;
  }
  std::string buffer;
  bool row_seen = false;
  for (;;) {
    auto next = co_await read_backend_message(server, buffer);
    if (auto* failure = std::get_if<std::string>(&next)) {
      exchange.result = LookupResult{{}, "auth.query: " + *failure};
      co_return exchange;
    }
    auto& message = std::get<proto::BackendMessage>(next);
    if (auto* row = std::get_if<proto::DataRow>(&message)) {
      if (row_seen || row->columns.size() < 2) {
        exchange.result.error = "auth.query must return one row of (name, secret)";
      } else if (row->columns[1]) {
        exchange.result.secret = classify_secret(std::move(*row->columns[1]));
      }
      row_seen = true;
    } else if (auto* error = std::get_if<proto::ErrorResponse>(&message)) {
      exchange.result.error = "auth.query failed on the server: " + std::string(error->code()) +
                              " " + std::string(error->message());
    } else if (std::holds_alternative<proto::ReadyForQuery>(message)) {
      exchange.healthy = buffer.empty();
      break;
    }
  }
  if (!exchange.result.error.empty()) exchange.result.secret.reset();
  co_return exchange;
}

awaitable<void> close_lookup(ServerStream& server) {
  std::string out;
  proto::encode(proto::Terminate{}, out);
  auto [ec, n] = co_await asio::async_write(server, asio::buffer(out), use_nothrow);
  (void)ec;
  (void)n;
  error_code ignored;
  server.close(ignored);
}

}  // namespace

awaitable<LookupResult> lookup_user(const config::Config& config, const config::Endpoint& endpoint,
                                    std::string environment, std::shared_ptr<ssl::context> tls,
                                    std::string user, std::string database, LookupPool* pool) {
  ServerTarget target;
  target.environment = std::move(environment);
  target.host = endpoint.host;
  target.port = endpoint.port;
  target.user = config.auth.query_user;
  target.password = config.auth.query_password;
  target.database = config.auth.query_database.empty() ? database : config.auth.query_database;
  target.sslmode = endpoint.sslmode;
  target.tls = std::move(tls);
  target.parameters.emplace_back("application_name", "pgflip auth_query");
  // A pooled connection serves only a lookup with the very same server and login.
  const std::string key = target.environment + '\0' + target.host + '\0' +
                          std::to_string(target.port) + '\0' + target.user + '\0' +
                          target.password + '\0' + target.database + '\0' +
                          std::string(config::to_string(target.sslmode));
  const auto executor = co_await asio::this_coro::executor;

  // A pooled connection the server has dropped meanwhile gets one retry on a new one.
  if (std::optional<ServerStream> pooled = pool ? pool->take(executor, key) : std::nullopt) {
    Exchange exchange = co_await run_lookup(*pooled, config.auth.query, user);
    if (exchange.healthy) {
      pool->give_back(executor, key, std::move(*pooled));
      co_return std::move(exchange.result);
    }
    co_await close_lookup(*pooled);
  }
  auto login = co_await connect_and_login(target, config.server.connect_timeout);
  if (auto* error = std::get_if<ServerLoginError>(&login))
    co_return LookupResult{{}, error->reason};
  ServerStream& server = std::get<ServerLogin>(login).socket;
  Exchange exchange = co_await run_lookup(server, config.auth.query, user);
  if (pool && exchange.healthy) {
    pool->give_back(executor, key, std::move(server));
  } else {
    co_await close_lookup(server);
  }
  co_return std::move(exchange.result);
}

}  // namespace pgflip::proxy
