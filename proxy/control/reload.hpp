// Configuration reload (SIGHUP, `pgflipctl reload`): what can change while pgflip runs.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/session/proxy_context.hpp"

namespace pgflip::proxy {

/// What a reload did. Key names only: values may be secrets.
struct ReloadOutcome {
  /// Keys whose new values are in force (for new sessions and server connections; the log
  /// level and format, limits and admin commands at once). "auth.users_file" is listed when
  /// the file's users or secrets changed, even if its path did not; "tls.cert_file" when the
  /// certificate served to clients changed (renewed in place, or TLS turned on or off).
  std::vector<std::string> changed;
  /// Keys that changed in the file but keep their old values until pgflip restarts.
  std::vector<std::string> needs_restart;
};

/// `after` with every restart-only key (config::restart_only) set back to its value in
/// `before`, and the whole [green] table when it was added or removed. Fills `outcome` with
/// the keys that differ, split into those applied and those left for a restart.
[[nodiscard]] config::Config keep_restart_only(const config::Config& before,
                                               const config::Config& after, ReloadOutcome& outcome);

/// Reads the file the running configuration came from (Config::source) again, validates it as
/// `pgflip --check-config` does (certificates, CA files, the users file) and applies it. On any
/// problem throws std::runtime_error (config::ConfigError for the file itself) and changes
/// nothing. Callers serialise reloads, and keep switchovers from running meanwhile: a reload
/// may change the active environment's endpoint in the router.
[[nodiscard]] ReloadOutcome reload_config(ProxyContext& context);

}  // namespace pgflip::proxy
