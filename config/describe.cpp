// The loaded configuration as flat key/value rows (for SHOW CONFIG), secrets masked.
#include "config/describe.hpp"

#include <cctype>
#include <functional>

namespace pgflip::config {
namespace {

std::string ms(std::chrono::milliseconds value) { return std::to_string(value.count()); }
std::string boolean(bool value) { return value ? "true" : "false"; }

std::string list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string listen(const ServerSettings& server) {
  const bool v6 = server.listen_host.find(':') != std::string::npos;
  return (v6 ? "[" + server.listen_host + "]" : server.listen_host) + ":" +
         std::to_string(server.listen_port);
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

/// One key of the table: how to read its value from a Config, and its properties.
struct KeySpec {
  std::string key;
  std::function<std::string(const Config&)> value;
  bool secret = false;
  bool restart = false;
};

// The endpoint keys, for [blue] or [green].
std::vector<KeySpec> endpoint_specs(std::string_view table,
                                    std::function<const Endpoint*(const Config&)> get) {
  struct Field {
    std::string_view name;
    std::function<std::string(const Endpoint&)> value;
    bool secret;
  };
  const Field fields[] = {
      {"host", [](const Endpoint& e) { return e.host; }, false},
      {"port", [](const Endpoint& e) { return std::to_string(e.port); }, false},
      {"user", [](const Endpoint& e) { return e.user; }, false},
      {"password", [](const Endpoint& e) { return e.password; }, true},
      {"database", [](const Endpoint& e) { return e.database; }, false},
      {"admin_user", [](const Endpoint& e) { return e.admin_user; }, false},
      {"admin_password", [](const Endpoint& e) { return e.admin_password; }, true},
      {"admin_database", [](const Endpoint& e) { return e.admin_database; }, false},
      {"sslmode", [](const Endpoint& e) { return std::string(to_string(e.sslmode)); }, false},
      {"sslrootcert", [](const Endpoint& e) { return e.sslrootcert; }, false},
  };
  std::vector<KeySpec> specs;
  for (const Field& field : fields) {
    specs.push_back(KeySpec{std::string(table) + "." + std::string(field.name),
                            [get, value = field.value](const Config& c) -> std::string {
                              const Endpoint* endpoint = get(c);
                              return endpoint ? value(*endpoint) : std::string();
                            },
                            field.secret, true});
  }
  return specs;
}

std::vector<KeySpec> all_specs() {
  // `restart`: what a running pgflip cannot change without restarting (sockets, threads,
  // where servers are, TLS contexts, the durable state file).
  std::vector<KeySpec> specs = {
      {"server.listen", [](const Config& c) { return listen(c.server); }, false, true},
      {"server.workers", [](const Config& c) { return std::to_string(c.server.workers); }, false,
       true},
      {"server.connect_timeout_ms", [](const Config& c) { return ms(c.server.connect_timeout); }},
      {"server.startup_timeout_ms", [](const Config& c) { return ms(c.server.startup_timeout); }},
      {"server.shutdown_timeout_ms", [](const Config& c) { return ms(c.server.shutdown_timeout); }},
      {"server.max_message_size",
       [](const Config& c) { return std::to_string(c.server.max_message_size); }},
      {"server.max_client_conn",
       [](const Config& c) { return std::to_string(c.server.max_client_conn); }},
      {"server.max_client_conn_per_user",
       [](const Config& c) { return std::to_string(c.server.max_client_conn_per_user); }},
      {"server.max_client_conn_per_database",
       [](const Config& c) { return std::to_string(c.server.max_client_conn_per_database); }},
      {"server.client_idle_timeout_ms",
       [](const Config& c) { return ms(c.server.client_idle_timeout); }},
      {"admin.socket", [](const Config& c) { return c.admin.socket; }, false, true},
      {"admin.console_database", [](const Config& c) { return c.admin.console_database; }},
      {"auth.method", [](const Config& c) { return std::string(to_string(c.auth.method)); }},
      {"auth.users_file", [](const Config& c) { return c.auth.users_file; }},
      {"auth.query_user", [](const Config& c) { return c.auth.query_user; }},
      {"auth.query_password", [](const Config& c) { return c.auth.query_password; }, true},
      {"auth.query_database", [](const Config& c) { return c.auth.query_database; }},
      {"auth.query", [](const Config& c) { return c.auth.query; }},
      {"auth.admin_users", [](const Config& c) { return list(c.auth.admin_users); }},
      {"auth.stats_users", [](const Config& c) { return list(c.auth.stats_users); }},
      {"tls.cert_file", [](const Config& c) { return c.tls.cert_file; }, false, true},
      {"tls.key_file", [](const Config& c) { return c.tls.key_file; }, false, true},
      {"tls.client_tls", [](const Config& c) { return std::string(to_string(c.tls.client_tls)); },
       false, true},
  };
  auto blue = endpoint_specs("blue", [](const Config& c) { return &c.blue; });
  auto green =
      endpoint_specs("green", [](const Config& c) { return c.green ? &*c.green : nullptr; });
  specs.insert(specs.end(), blue.begin(), blue.end());
  specs.insert(specs.end(), green.begin(), green.end());
  std::vector<KeySpec> rest = {
      {"log.level", [](const Config& c) { return c.log.level; }},
      {"replication.databases", [](const Config& c) { return list(c.replication.databases); }},
      {"replication.blue_conninfo_for_green",
       [](const Config& c) {
         return mask_conninfo_password(c.replication.blue_conninfo_for_green);
       }},
      {"replication.name_prefix", [](const Config& c) { return c.replication.name_prefix; }},
      {"replication.retained_wal_alarm_bytes",
       [](const Config& c) { return std::to_string(c.replication.retained_wal_alarm_bytes); }},
      {"replication.pg_bin_dir", [](const Config& c) { return c.replication.pg_bin_dir; }},
      {"replication.statement_timeout_ms",
       [](const Config& c) { return ms(c.replication.statement_timeout); }},
      {"replication.heartbeat_interval_ms",
       [](const Config& c) { return ms(c.replication.heartbeat_interval); }, false, true},
      {"switchover.state_file", [](const Config& c) { return c.switchover.state_file; }, false,
       true},
      {"switchover.timeout_ms", [](const Config& c) { return ms(c.switchover.timeout); }},
      {"switchover.drain_timeout_ms",
       [](const Config& c) { return ms(c.switchover.drain_timeout); }},
      {"switchover.sentinel_timeout_ms",
       [](const Config& c) { return ms(c.switchover.sentinel_timeout); }},
      {"switchover.max_lag_bytes",
       [](const Config& c) { return std::to_string(c.switchover.max_lag_bytes); }},
      {"switchover.max_lag_ms", [](const Config& c) { return ms(c.switchover.max_lag); }},
      {"switchover.max_transaction_age_ms",
       [](const Config& c) { return ms(c.switchover.max_transaction_age); }},
      {"switchover.on_straggler",
       [](const Config& c) { return std::string(to_string(c.switchover.on_straggler)); }},
      {"switchover.unmovable_sessions",
       [](const Config& c) { return std::string(to_string(c.switchover.unmovable_sessions)); }},
      {"switchover.terminate_blue_backends",
       [](const Config& c) { return boolean(c.switchover.terminate_blue_backends); }},
  };
  specs.insert(specs.end(), rest.begin(), rest.end());
  return specs;
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
  const Config defaults;
  std::vector<ConfigEntry> entries;
  for (const KeySpec& spec : all_specs()) {
    ConfigEntry entry;
    entry.key = spec.key;
    entry.secret = spec.secret;
    entry.restart = spec.restart;
    const bool absent = spec.key.starts_with("green.") && !config.green;
    std::string value = absent ? std::string() : spec.value(config);
    std::string default_value = spec.value(defaults);
    if (spec.key.starts_with("green.")) {
      // [green] has no Config default: its defaults are an Endpoint's, as for [blue].
      Config with_green;
      with_green.green.emplace();
      default_value = spec.value(with_green);
    }
    entry.is_default = !absent && value == default_value;
    if (spec.secret) {
      if (!value.empty()) value = kMaskedSecret;
      if (!default_value.empty()) default_value = kMaskedSecret;
    }
    if (!absent) entry.value = std::move(value);
    entry.default_value = std::move(default_value);
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace pgflip::config
