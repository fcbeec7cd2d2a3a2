// What every session's front door shares: TLS contexts, the users, connection counts; and
// the steps of a client's arrival that are not the session's business (TLS, refusals).
#include "proxy/frontdoor/front_door.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <array>
#include <chrono>
#include <stdexcept>

namespace pgflip::proxy {

using namespace asio::experimental::awaitable_operators;

void FrontDoor::load(const config::Config& config) {
  set_tls(load_tls(config));
  set_users(load_users(config));
  const bool needs_secrets = config.auth.method == config::AuthMethod::kMd5 ||
                             config.auth.method == config::AuthMethod::kScramSha256;
  if (needs_secrets && !users() && config.auth.query_user.empty()) {
    spdlog::warn(
        "auth.method = {} but neither auth.users_file nor auth.query_user is set: "
        "every client will be refused",
        config::to_string(config.auth.method));
  }
  if (config.tls.client_tls != config::ClientTlsMode::kDisable && !config.tls.enabled()) {
    spdlog::info("TLS to clients is off (no tls.cert_file/tls.key_file)");
  }
}

std::shared_ptr<const TlsContexts> FrontDoor::load_tls(const config::Config& config) {
  auto tls = std::make_shared<TlsContexts>();
  if (config.tls.enabled()) {
    tls->client = make_client_tls_context(config.tls);
    if (tls->client->end_point_hash.empty()) {
      spdlog::warn(
          "tls.cert_file {}: its signature algorithm has no tls-server-end-point hash; "
          "SCRAM-SHA-256-PLUS (channel binding) is not offered",
          config.tls.cert_file);
    }
  }
  const auto add = [&](const config::Endpoint& endpoint, std::string_view name) {
    if (endpoint.sslmode == config::SslMode::kDisable || endpoint.is_unix_socket()) return;
    tls->servers.emplace(std::string(name), make_server_tls_context(endpoint, name));
  };
  add(config.blue, "blue");
  if (config.green) add(*config.green, "green");
  return tls;
}

std::shared_ptr<const UserStore> FrontDoor::load_users(const config::Config& config) {
  if (config.auth.users_file.empty()) return nullptr;
  try {
    return UserStore::load(config.auth.users_file);
  } catch (const UsersFileError& e) {
    throw std::runtime_error(std::string("auth.users_file: ") + e.what());
  }
}

void raise_file_limit(std::uint32_t max_clients) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  // A client and its server connection: two descriptors each, plus some to spare.
  const rlim_t needed = rlim_t{max_clients} * 2 + 64;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    spdlog::warn(
        "open file limit {} is below what server.max_client_conn = {} needs ({}); "
        "raise it (ulimit -n, LimitNOFILE=)",
        static_cast<unsigned long long>(limit.rlim_cur), max_clients,
        static_cast<unsigned long long>(needed));
  }
}

std::shared_ptr<ssl::context> FrontDoor::server_tls_for(std::string_view environment) const {
  const auto tls = tls_.load();
  if (!tls) return nullptr;
  const auto found = tls->servers.find(environment);
  return found == tls->servers.end() ? nullptr : found->second;
}

std::string FrontDoor::admit_login(const config::ServerSettings& settings, const std::string& user,
                                   const std::string& database, ConnectionLimits::Ticket& ticket) {
  switch (limits.try_login(user, database, settings.max_client_conn_per_user,
                           settings.max_client_conn_per_database, ticket)) {
    case ConnectionLimits::Refusal::kNone:
      return {};
    case ConnectionLimits::Refusal::kUser:
      return "too many connections for role \"" + user + "\" (server.max_client_conn_per_user = " +
             std::to_string(settings.max_client_conn_per_user) + ")";
    case ConnectionLimits::Refusal::kDatabase:
      return "too many connections for database \"" + database +
             "\" (server.max_client_conn_per_database = " +
             std::to_string(settings.max_client_conn_per_database) + ")";
  }
  return "too many connections";
}

awaitable<std::string> accept_client_tls(ClientStream& client, ClientTlsContext& tls,
                                         std::string_view initial, bool direct) {
  client.start_tls(tls.context);
  auto [ec, used] = co_await client.tls().async_handshake(
      ssl::stream_base::server, asio::buffer(initial.data(), initial.size()), use_nothrow);
  (void)used;
  if (ec) co_return "TLS handshake failed: " + ec.message();
  if (direct && !alpn_selected_postgresql(client.native_tls())) {
    // As PostgreSQL 17: direct TLS without ALPN could be another protocol's client.
    co_return "direct TLS connection without ALPN \"postgresql\"";
  }
  co_return std::string{};
}

awaitable<void> drain_and_close(tcp::socket& socket, std::chrono::milliseconds grace) {
  error_code ignored;
  if (!socket.is_open()) co_return;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  asio::steady_timer timer(socket.get_executor());
  timer.expires_after(grace);
  std::array<char, 1024> sink{};
  for (bool open = true; open;) {
    auto result = co_await (socket.async_read_some(asio::buffer(sink), use_nothrow) ||
                            timer.async_wait(use_nothrow));
    open = result.index() == 0 && !std::get<0>(std::get<0>(result));
  }
  socket.close(ignored);
}

awaitable<void> refuse_connection(tcp::socket socket, std::string error) {
  asio::steady_timer timer(socket.get_executor());
  timer.expires_after(std::chrono::seconds(1));
  co_await (asio::async_write(socket, asio::buffer(error), use_nothrow) ||
            timer.async_wait(use_nothrow));
  co_await drain_and_close(socket, std::chrono::seconds(1));
}

std::vector<std::pair<std::string, double>> FrontDoor::certificate_expiries() const {
  std::vector<std::pair<std::string, double>> expiries;
  if (const auto tls = client_tls()) {
    if (auto at = certificate_not_after(tls->context.native_handle())) {
      expiries.emplace_back("tls.cert_file", *at);
    }
  }
  for (const char* environment : {"blue", "green"}) {
    if (const auto tls = server_tls_for(environment)) {
      if (auto at = certificate_not_after(tls->native_handle())) {
        expiries.emplace_back(std::string(environment) + ".sslcert", *at);
      }
    }
  }
  return expiries;
}

}  // namespace pgflip::proxy
