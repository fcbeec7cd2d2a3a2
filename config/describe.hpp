// The loaded configuration as flat key/value rows (for SHOW CONFIG), secrets masked.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace pgflip::config {

/// What a secret looks like in a description: never the secret itself.
inline constexpr std::string_view kMaskedSecret = "********";

struct ConfigEntry {
  std::string key;                   // dotted: "server.listen"
  std::optional<std::string> value;  // nullopt: the table is absent (no [green])
  std::string default_value;
  bool is_default = true;  // the value equals the default
  bool secret = false;     // value and default are masked
  bool restart = false;    // a change takes effect only when pgflip restarts
};

/// Every key of `config`, in the order of the configuration reference. Passwords (and the
/// password inside replication.blue_conninfo_for_green) are shown as kMaskedSecret when set.
[[nodiscard]] std::vector<ConfigEntry> describe(const Config& config);

/// Keys whose new value a running pgflip takes only when it restarts (a reload reports them).
/// A green table added or removed also waits for a restart.
[[nodiscard]] const std::vector<std::string_view>& restart_only_keys();
[[nodiscard]] bool restart_only(std::string_view key);

/// `conninfo` with the value of every password=... masked (keyword/value form and URIs).
[[nodiscard]] std::string mask_conninfo_password(std::string_view conninfo);

}  // namespace pgflip::config
