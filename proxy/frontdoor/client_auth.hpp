// Client authentication: the password exchange pgflip runs with a client before it logs in
// to a server for it (trust, MD5, SCRAM-SHA-256[-PLUS] or a TLS client certificate), and where
// secrets come from.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "proxy/base/stream.hpp"
#include "proxy/frontdoor/users.hpp"
#include "proxy/upstream/lookup_pool.hpp"
#include "proxy/upstream/server_connection.hpp"

namespace pgflip::proxy {

/// What pgflip learned about a client's password while authenticating it, in the order
/// server logins use it: the plaintext password when known, else the client's SCRAM keys
/// (pass-through), else its MD5 secret. All empty after trust.
struct ClientCredentials {
  std::string password;
  std::optional<ScramPassThrough> scram_keys;
  std::string md5_secret;
  bool admin = false;  // listed in auth.admin_users
};

/// Everything the exchange needs besides the connection.
struct ClientAuthRequest {
  std::shared_ptr<const config::Config> config;
  std::shared_ptr<const UserStore> users;  // may be null (no users file)
  /// Where auth.query runs (the active environment) and its TLS context.
  const config::Endpoint* lookup_endpoint = nullptr;
  std::string lookup_environment;
  std::shared_ptr<ssl::context> lookup_tls;
  /// Where auth.query connections wait between lookups; null = a new one per lookup.
  LookupPool* lookup_pool = nullptr;
  std::string user;
  std::string database;
  /// tls-server-end-point of pgflip's certificate when the client is on TLS: then
  /// SCRAM-SHA-256-PLUS is offered. Empty otherwise.
  std::string channel_binding;
  std::uint64_t session_id = 0;
  std::string peer;  // for logs
};

/// Authenticates the client as `request.config->auth.method` says. On success returns what
/// server logins may use. On failure the client has been sent a FATAL ErrorResponse (28P01
/// wrong password or unknown user, 08P01 protocol violation, ...) and the reason logged, and
/// nullopt is returned; a client that simply closes (as psql does before prompting for a
/// password) is not an error. `pending` holds client bytes already read; whatever follows
/// the last authentication message stays there. Secrets are never logged.
[[nodiscard]] awaitable<std::optional<ClientCredentials>> authenticate_client(
    ClientStream& client, std::string& pending, const ClientAuthRequest& request);

/// The result of looking a user up with auth.query.
struct LookupResult {
  std::optional<UserSecret> secret;  // nullopt: no such user (or no usable secret)
  std::string error;                 // non-empty: the lookup itself failed (for the log)
};

/// Runs auth.query for `user` on `endpoint`, logged in as auth.query_user: over an idle
/// connection from `pool` when it has one for this server and login (and, when it is done,
/// leaves its connection there), else over a new one.
[[nodiscard]] awaitable<LookupResult> lookup_user(const config::Config& config,
                                                  const config::Endpoint& endpoint,
                                                  std::string environment,
                                                  std::shared_ptr<ssl::context> tls,
                                                  std::string user, std::string database,
                                                  LookupPool* pool = nullptr);

}  // namespace pgflip::proxy
