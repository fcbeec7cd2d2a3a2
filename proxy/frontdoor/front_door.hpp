// What every session's front door shares: TLS contexts, the users, connection counts; and
// the steps of a client's arrival that are not the session's business (TLS, refusals).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "proxy/base/stream.hpp"
#include "proxy/base/tls.hpp"
#include "proxy/frontdoor/limits.hpp"
#include "proxy/frontdoor/users.hpp"

namespace pgflip::proxy {

/// The TLS contexts of one configuration, built together; a reload replaces them whole.
struct TlsContexts {
  /// TLS towards clients; null when not offered (no certificate, or client_tls = disable).
  std::shared_ptr<ClientTlsContext> client;
  /// TLS towards each environment's server ("blue", "green"), for sslmode != disable.
  std::map<std::string, std::shared_ptr<ssl::context>, std::less<>> servers;
};

struct FrontDoor {
  /// TLS towards clients, or null. Thread-safe; a reload replaces it. A session keeps the one
  /// it started with: its handshake and channel binding must use the same certificate.
  [[nodiscard]] std::shared_ptr<ClientTlsContext> client_tls() const {
    const auto tls = tls_.load();
    return tls ? tls->client : nullptr;
  }
  void set_tls(std::shared_ptr<const TlsContexts> tls) { tls_.store(std::move(tls)); }
  /// auth.users_file; null when none is configured. Thread-safe; a reload replaces it.
  [[nodiscard]] std::shared_ptr<const UserStore> users() const { return users_.load(); }
  void set_users(std::shared_ptr<const UserStore> users) { users_.store(std::move(users)); }
  ConnectionLimits limits;

  /// Loads the certificates, CA files and users file `config` names (load_tls, load_users).
  /// Throws std::runtime_error naming the file at fault.
  void load(const config::Config& config);

  /// Reads the users file `config` names (null when none). Throws std::runtime_error naming
  /// the file and line at fault.
  [[nodiscard]] static std::shared_ptr<const UserStore> load_users(const config::Config& config);

  /// Reads the certificate, key and CA files `config` names (the files' current contents, so a
  /// certificate renewed in place is picked up). Throws std::runtime_error naming the file.
  [[nodiscard]] static std::shared_ptr<const TlsContexts> load_tls(const config::Config& config);

  /// The TLS context for an environment's server, or null.
  [[nodiscard]] std::shared_ptr<ssl::context> server_tls_for(std::string_view environment) const;
  /// Each certificate pgflip presents now, by label ("tls.cert_file" to clients,
  /// "blue.sslcert"/"green.sslcert" to the servers), with its notAfter as Unix time.
  [[nodiscard]] std::vector<std::pair<std::string, double>> certificate_expiries() const;

  /// Counts a logged-in client against server.max_client_conn_per_user/_per_database.
  /// Returns the message for a FATAL 53300, or empty when admitted (counted in `ticket`).
  [[nodiscard]] std::string admit_login(const config::ServerSettings& settings,
                                        const std::string& user, const std::string& database,
                                        ConnectionLimits::Ticket& ticket);

 private:
  std::atomic<std::shared_ptr<const UserStore>> users_;
  std::atomic<std::shared_ptr<const TlsContexts>> tls_;
};

/// Raises the soft RLIMIT_NOFILE to the hard limit, and warns when that still cannot hold
/// `max_clients` clients with their server connections.
void raise_file_limit(std::uint32_t max_clients);

/// Runs the server side of a client's TLS handshake. `initial` holds bytes already read that
/// belong to it (PostgreSQL 17's direct TLS: the start of the ClientHello). With `direct`,
/// the client must have negotiated ALPN "postgresql". Returns why it failed, or empty.
[[nodiscard]] awaitable<std::string> accept_client_tls(ClientStream& client, ClientTlsContext& tls,
                                                       std::string_view initial, bool direct);

/// How long a refused client may take to close its end before pgflip closes the socket.
inline constexpr std::chrono::milliseconds kRefusalGrace{500};

/// Closes a client connection after a refusal: stops sending, then reads and discards until
/// the client closes or `grace` passes. Closing with unread client bytes would make the
/// kernel send a reset, which can destroy the ErrorResponse before the client reads it.
awaitable<void> drain_and_close(tcp::socket& socket, std::chrono::milliseconds grace);

/// Turns a connection away: sends `error` (a whole ErrorResponse), then closes once the
/// client has closed or after a short grace period, so that unread client bytes do not make
/// the kernel reset the connection and lose the error.
awaitable<void> refuse_connection(tcp::socket socket, std::string error);

}  // namespace pgflip::proxy
