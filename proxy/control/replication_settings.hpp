// The replication manager's settings, mapped from the configuration's admin logins.
#pragma once

#include "config/config.hpp"
#include "replication/settings.hpp"

namespace pgflip::proxy {

/// [blue]/[green] admin logins (with their TLS settings) and [replication], for
/// replication::Manager.
[[nodiscard]] replication::Settings replication_settings(const config::Config& config);

}  // namespace pgflip::proxy
