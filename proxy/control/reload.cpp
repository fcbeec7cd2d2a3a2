// Configuration reload (SIGHUP, `pgflipctl reload`): what can change while pgflip runs.
#include "proxy/control/reload.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

#include "proxy/frontdoor/front_door.hpp"
#include "proxy/observe/log.hpp"

namespace pgflip::proxy {

namespace {

// TLS contexts towards a server are built at start for its sslmode and CA file.
void keep_server_tls(const config::Endpoint& before, config::Endpoint& after) {
  after.sslmode = before.sslmode;
  after.sslrootcert = before.sslrootcert;
  after.sslcert = before.sslcert;
  after.sslkey = before.sslkey;
}

bool contains(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

log::Format log_format(config::LogFormat format) {
  return format == config::LogFormat::kJson ? log::Format::kJson : log::Format::kText;
}

}  // namespace

config::Config keep_restart_only(const config::Config& before, const config::Config& after,
                                 ReloadOutcome& outcome) {
  config::Config kept = after;
  // The listener, the worker threads and the admin socket exist from start to stop.
  kept.server.listen_host = before.server.listen_host;
  kept.server.listen_port = before.server.listen_port;
  kept.server.workers = before.server.workers;
  kept.admin = before.admin;
  // The metrics endpoint is bound at start.
  kept.metrics = before.metrics;
  // Whether pgflip talks TLS to a server, and with which CA and client certificate files, is
  // fixed at start: live sessions and the switchover rely on it. (The files themselves are
  // re-read on reload.)
  keep_server_tls(before.blue, kept.blue);
  if (before.green.has_value() != after.green.has_value()) {
    kept.green = before.green;
  } else if (kept.green) {
    keep_server_tls(*before.green, *kept.green);
  }
  // The durable record of the active environment must not move under a running pgflip.
  kept.switchover.state_file = before.switchover.state_file;

  const std::vector<std::string> applied = config::changed_keys(before, kept);
  for (const std::string& key : config::changed_keys(before, after)) {
    (contains(applied, key) ? outcome.changed : outcome.needs_restart).push_back(key);
  }
  return kept;
}

ReloadOutcome reload_config(ProxyContext& context) {
  const std::shared_ptr<const config::Config> before = context.config();
  config::Config after = config::load_config_file(before->source);
  // Everything the file names, as `pgflip --check-config` checks it; also reads the users.
  FrontDoor check;
  check.load(after);

  ReloadOutcome outcome;
  auto kept = std::make_shared<const config::Config>(keep_restart_only(*before, after, outcome));
  // The certificate, key and CA files as they are now: a certificate renewed in place is
  // served to new clients; sessions keep the one they began with.
  std::shared_ptr<const TlsContexts> tls = FrontDoor::load_tls(*kept);
  const std::shared_ptr<ClientTlsContext> old_client_tls = context.front_door.client_tls();
  const bool certificate_changed =
      static_cast<bool>(tls->client) != static_cast<bool>(old_client_tls) ||
      (tls->client && old_client_tls && tls->client->fingerprint != old_client_tls->fingerprint);
  if (certificate_changed && !contains(outcome.changed, "tls.cert_file")) {
    outcome.changed.emplace_back("tls.cert_file");
  }
  const std::shared_ptr<const UserStore> users = check.users();
  const std::shared_ptr<const UserStore> old_users = context.front_door.users();
  const bool users_changed = static_cast<bool>(users) != static_cast<bool>(old_users) ||
                             (users && old_users && !users->same_users(*old_users));
  if (users_changed && !contains(outcome.changed, "auth.users_file")) {
    outcome.changed.emplace_back("auth.users_file");
  }

  // From here on nothing throws: the new configuration goes in whole.
  log::set_level(kept->log.level);
  log::set_format(log_format(kept->log.format));
  if (kept->server.max_client_conn > before->server.max_client_conn) {
    raise_file_limit(kept->server.max_client_conn);
  }
  // New server connections of the active environment use its new host, port and logins.
  Router::Active active = context.router.active();
  active.endpoint = active.name == "green" && kept->green ? *kept->green : kept->blue;
  context.router.set_active(std::move(active));
  context.front_door.set_users(users);
  context.front_door.set_tls(std::move(tls));
  context.set_config(std::move(kept));
  return outcome;
}

}  // namespace pgflip::proxy
