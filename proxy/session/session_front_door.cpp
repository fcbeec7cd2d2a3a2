// A session's front door: encryption requests and TLS, client authentication, login limits,
// and which credentials and TLS settings its server logins use.
#include <spdlog/spdlog.h>

#include "protocol/messages.hpp"
#include "proxy/session/session.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;

awaitable<bool> Session::answer_encryption_request(bool tls_request, std::string& buffer,
                                                   int& negotiations) {
  if (++negotiations > 2) {
    co_await write_client(proto::encode_error("FATAL", "08P01", "too many encryption requests"));
    log::info(log_conn(), "{} closed: too many encryption requests", peer_);
    co_return false;
  }
  if (client_.is_tls()) {
    co_await write_client(proto::encode_error(
        "FATAL", "08P01", "protocol violation: encryption request on an encrypted connection"));
    log::info(log_conn(), "{} closed: encryption request inside TLS", peer_);
    co_return false;
  }
  if (!buffer.empty()) {
    // The client must wait for our answer: bytes already here were sent in the clear before
    // the handshake and could have been injected by a man in the middle (CVE-2021-23214).
    co_await write_client(proto::encode_error(
        "FATAL", "08P01", "received unencrypted data after SSL or GSSAPI encryption request"));
    log::warn(log_conn(),
              "{} closed: {} bytes sent before the encryption answer (possible "
              "man-in-the-middle)",
              peer_, buffer.size());
    co_return false;
  }
  if (!tls_request || !client_tls_) {
    // GSSAPI is not offered, nor TLS without a certificate: 'N' lets the client continue in
    // the clear (or give up, if it requires encryption).
    co_await write_client("N");
    co_return true;
  }
  co_await write_client("S");
  if (std::string error = co_await accept_client_tls(client_, *client_tls_, {}, false);
      !error.empty()) {
    log::info(log_conn(), "{} closed: {}", peer_, error);
    co_return false;
  }
  log::debug(log_conn(), "TLS established ({})", SSL_get_version(client_.native_tls()));
  co_return true;
}

awaitable<bool> Session::start_direct_tls(std::string& buffer) {
  if (!client_tls_) {
    // Nothing sensible can be said in the clear to a TLS client.
    log::info(log_conn(), "{} closed: direct TLS connection, but TLS is not configured", peer_);
    co_return false;
  }
  const std::string initial = std::move(buffer);
  buffer.clear();
  if (std::string error = co_await accept_client_tls(client_, *client_tls_, initial, true);
      !error.empty()) {
    log::info(log_conn(), "{} closed: {}", peer_, error);
    co_return false;
  }
  log::debug(log_conn(), "direct TLS established ({})", SSL_get_version(client_.native_tls()));
  co_return true;
}

awaitable<bool> Session::refuse_unencrypted() {
  if (client_.is_tls() || config_->tls.client_tls != config::ClientTlsMode::kRequire) {
    co_return true;
  }
  co_await write_client(proto::encode_error(
      "FATAL", "28000", "pgflip requires TLS (SSL) connections (tls.client_tls = require)"));
  log::info(log_conn(), "{} refused: no TLS and tls.client_tls = require", peer_);
  co_return false;
}

awaitable<bool> Session::authenticate() {
  set_state(State::kAuth);
  FrontDoor& front_door = context_.front_door;
  const std::string& user = *startup_message_.find("user");
  const std::string* requested = startup_message_.find("database");
  const std::string& database = requested && !requested->empty() ? *requested : user;
  const Router::Active active = context_.router.active();

  ClientAuthRequest request;
  request.config = config_;
  request.users = front_door.users();
  request.lookup_endpoint = &active.endpoint;
  request.lookup_environment = active.name;
  request.lookup_tls = front_door.server_tls_for(active.name);
  request.lookup_pool = &context_.lookup_pool;
  request.user = user;
  request.database = database;
  if (client_.is_tls() && client_tls_) request.channel_binding = client_tls_->end_point_hash;
  request.session_id = id_;
  request.peer = peer_;
  auto credentials = co_await authenticate_client(client_, client_pending_, request);
  if (!credentials) {
    login_failure_ = LoginFailure::kAuth;
    co_return false;
  }
  credentials_ = std::move(*credentials);

  // Counted after authentication, so an unknown client cannot use up a user's share.
  if (std::string refusal = front_door.admit_login(config_->server, user, database, login_ticket_);
      !refusal.empty()) {
    login_failure_ = LoginFailure::kLimit;
    co_await write_client(proto::encode_error("FATAL", "53300", refusal));
    log::info(log_conn(), "{} user={} database={} refused: {}", peer_, user, database, refusal);
    co_return false;
  }
  set_state(State::kLogin);
  co_return true;
}

void Session::apply_front_door(ServerTarget& target, const config::Endpoint& endpoint) const {
  target.sslmode = endpoint.sslmode;
  target.tls = context_.front_door.server_tls_for(target.environment);
  if (!endpoint.user.empty()) return;  // pgflip logs in as the configured user
  // The client's own credentials, best first: its password, its SCRAM keys, its MD5 secret.
  // Without any, the environment's password (if set) is used for the client's user name.
  if (!credentials_.password.empty()) {
    target.password = credentials_.password;
    return;
  }
  target.scram_keys = credentials_.scram_keys;
  target.md5_secret = credentials_.md5_secret;
}

bool Session::arm_idle_timer() {
  const auto timeout = config_->server.client_idle_timeout;
  if (timeout.count() == 0 || !idle()) return false;
  idle_timed_out_ = false;
  if (!idle_timer_) idle_timer_ = std::make_unique<asio::steady_timer>(client_.get_executor());
  idle_timer_->expires_after(timeout);
  idle_timer_->async_wait([self = shared_from_this()](error_code ec) {
    if (ec) return;  // disarmed: the client sent something in time
    self->idle_timed_out_ = true;
    error_code ignored;
    self->client_.cancel(ignored);  // wakes the relay blocked reading the client
  });
  return true;
}

void Session::disarm_idle_timer(const error_code& read_result) {
  idle_timer_->cancel();
  // The timer may have fired just as the read completed with data: then the read counts.
  if (!read_result) idle_timed_out_ = false;
}

}  // namespace pgflip::proxy
