// The loaded configuration as flat key/value rows (for SHOW CONFIG), secrets masked.
#include "config/describe.hpp"

#include <algorithm>
#include <cctype>
#include <iterator>

namespace pgflip::config {
namespace {

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

const std::vector<std::string_view>& restart_only_keys() {
  // The listener, the worker threads, the admin socket and console name, the metrics
  // endpoint, whether (and with which CA and client certificate files) pgflip talks TLS to
  // each server, the state file. proxy/reload.cpp keeps each of them; tests/proxy/reload_test.cpp
  // checks both agree.
  static const std::vector<std::string_view> keys = {
      "server.listen",         "server.workers",    "admin.socket",  "admin.console_database",
      "blue.sslmode",          "blue.sslrootcert",  "blue.sslcert",  "blue.sslkey",
      "green.sslmode",         "green.sslrootcert", "green.sslcert", "green.sslkey",
      "switchover.state_file", "metrics.listen",
  };
  return keys;
}

bool restart_only(std::string_view key) {
  const auto& keys = restart_only_keys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

namespace {

bool is_secret(std::string_view key) {
  return key.ends_with("password") || key == "replication.blue_conninfo_for_green";
}

std::string masked(std::string_view key, const std::string& value) {
  if (value.empty()) return value;
  if (key == "replication.blue_conninfo_for_green") return mask_conninfo_password(value);
  return std::string(kMaskedSecret);
}

}  // namespace

std::string mask_conninfo_password(std::string_view conninfo) {
  std::string out(conninfo);
  const bool uri =
      starts_with_ci(conninfo, "postgresql://") || starts_with_ci(conninfo, "postgres://");
  if (uri) {
    // postgresql://user:secret@host/db?password=secret&...
    const std::size_t authority = out.find("//") + 2;
    const std::size_t end = out.find_first_of("/?", authority);
    const std::size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
    if (at != std::string::npos && at >= authority) {
      const std::size_t colon = out.find(':', authority);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, kMaskedSecret);
      }
    }
    for (std::size_t pos = out.find('?'); pos != std::string::npos; pos = out.find('&', pos + 1)) {
      if (starts_with_ci(std::string_view(out).substr(pos + 1), "password=")) {
        const std::size_t value = pos + 1 + 9;
        const std::size_t stop = out.find('&', value);
        out.replace(value, (stop == std::string::npos ? out.size() : stop) - value, kMaskedSecret);
      }
    }
    return out;
  }
  // keyword = value pairs; a value is a bare word or '...' with \' and \\ escapes.
  std::size_t pos = 0;
  while (pos < out.size()) {
    while (pos < out.size() && std::isspace(static_cast<unsigned char>(out[pos]))) ++pos;
    const std::size_t key_start = pos;
    while (pos < out.size() && out[pos] != '=' &&
           !std::isspace(static_cast<unsigned char>(out[pos]))) {
      ++pos;
    }
    const std::string_view key = std::string_view(out).substr(key_start, pos - key_start);
    while (pos < out.size() && std::isspace(static_cast<unsigned char>(out[pos]))) ++pos;
    if (pos >= out.size() || out[pos] != '=') break;  // malformed: leave the rest as it is
    ++pos;
    while (pos < out.size() && std::isspace(static_cast<unsigned char>(out[pos]))) ++pos;
    const std::size_t value_start = pos;
    if (pos < out.size() && out[pos] == '\'') {
      for (++pos; pos < out.size() && out[pos] != '\''; ++pos) {
        if (out[pos] == '\\') ++pos;
      }
      if (pos < out.size()) ++pos;  // the closing quote
    } else {
      while (pos < out.size() && !std::isspace(static_cast<unsigned char>(out[pos]))) ++pos;
    }
    if (key == "password") {
      const std::string masked(kMaskedSecret);
      out.replace(value_start, pos - value_start, masked);
      pos = value_start + masked.size();
    }
  }
  return out;
}

std::vector<ConfigEntry> describe(const Config& config) {
  // [green] has no Config default: its defaults are an Endpoint's, as for [blue].
  Config defaults;
  defaults.green.emplace();
  const auto values = flatten(config);
  const auto default_values = flatten(defaults);
  std::vector<ConfigEntry> entries;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto& [key, value] = values[i];
    ConfigEntry entry;
    entry.key = key;
    entry.secret = is_secret(key);
    entry.restart = restart_only(key);
    const bool absent = key.starts_with("green.") && !config.green;
    const std::string& default_value =
        i < default_values.size() ? default_values[i].second : std::string();
    entry.is_default = !absent && value == default_value;
    if (!absent) entry.value = entry.secret ? masked(key, value) : value;
    entry.default_value = entry.secret ? masked(key, default_value) : default_value;
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace pgflip::config
