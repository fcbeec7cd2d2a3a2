// Loads pgflip's TOML configuration and checks every key, naming the file, line and key at fault.
#include "config/config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include <toml++/toml.h>

namespace pgflip::config {
namespace {

// sockaddr_un::sun_path is 108 bytes on Linux, including the terminating NUL.
constexpr std::size_t kMaxSocketPathLength = 107;
// Deadlines are computed as now() + timeout; one day keeps that far from overflowing.
constexpr std::int64_t kMaxTimeoutMs = 24LL * 60 * 60 * 1000;
constexpr std::int64_t kMinMessageSize = 1024;
constexpr std::int64_t kMaxMessageSize = 1024LL * 1024 * 1024;
constexpr std::int64_t kMaxWorkers = 1024;
constexpr std::int64_t kMaxConnections = 1000000;
constexpr std::int64_t kMaxPrewarmConcurrency = 10000;
// PostgreSQL's NAMEDATALEN - 1: longer role names cannot exist.
constexpr std::size_t kMaxRoleNameLength = 63;
constexpr std::int64_t kMaxInt64 = std::numeric_limits<std::int64_t>::max();
// PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes.
constexpr std::size_t kMaxDatabaseNameLength = 63;
// Slot and subscription names are "<prefix>_<database>_<oid>" in 63 bytes; keep room for the rest.
constexpr std::size_t kMaxNamePrefixLength = 20;
constexpr std::string_view kListenExample =
    "expected 'host:port', e.g. '127.0.0.1:6432', '[::1]:6432' or '*:6432'";

constexpr std::string_view kTopLevelKeys[] = {"server",      "admin",     "metrics", "auth",
                                              "tls",         "blue",      "green",   "log",
                                              "replication", "switchover"};
constexpr std::string_view kServerKeys[] = {
    "listen",
    "workers",
    "connect_timeout_ms",
    "startup_timeout_ms",
    "shutdown_timeout_ms",
    "max_message_size",
    "max_client_conn",
    "max_client_conn_per_user",
    "max_client_conn_per_database",
    "client_idle_timeout_ms",
    "query_wait_timeout_ms",
};
constexpr std::string_view kAdminKeys[] = {"socket", "console_database"};
constexpr std::string_view kMetricsKeys[] = {"listen"};
constexpr std::string_view kAuthKeys[] = {
    "method",         "users_file",     "query",       "query_user",
    "query_password", "query_database", "admin_users", "stats_users",
};
constexpr std::string_view kTlsKeys[] = {"cert_file", "key_file", "client_tls", "client_ca_file"};
constexpr std::string_view kEndpointKeys[] = {
    "host",           "port",           "user",    "password",    "database", "admin_user",
    "admin_password", "admin_database", "sslmode", "sslrootcert", "sslcert",  "sslkey",
};
constexpr std::string_view kLogKeys[] = {"level", "format"};
constexpr std::string_view kReplicationKeys[] = {
    "databases",  "blue_conninfo_for_green", "name_prefix",           "retained_wal_alarm_bytes",
    "pg_bin_dir", "statement_timeout_ms",    "heartbeat_interval_ms",
};
constexpr std::string_view kSwitchoverKeys[] = {
    "state_file",          "timeout_ms",         "drain_timeout_ms",
    "sentinel_timeout_ms", "catchup_target_ms",  "catchup_timeout_ms",
    "max_lag_bytes",       "max_lag_ms",         "max_transaction_age_ms",
    "on_straggler",        "unmovable_sessions", "terminate_blue_backends",
    "prewarm_concurrency",
};
constexpr std::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                           "error", "critical", "off"};

struct TableKeys {
  std::string_view table;
  std::span<const std::string_view> keys;
};
constexpr TableKeys kSchema[] = {{"server", kServerKeys},
                                 {"admin", kAdminKeys},
                                 {"metrics", kMetricsKeys},
                                 {"auth", kAuthKeys},
                                 {"tls", kTlsKeys},
                                 {"blue", kEndpointKeys},
                                 {"green", kEndpointKeys},
                                 {"log", kLogKeys},
                                 {"replication", kReplicationKeys},
                                 {"switchover", kSwitchoverKeys}};

std::string join_key(std::string_view prefix, std::string_view name) {
  if (prefix.empty()) return std::string(name);
  std::string key(prefix);
  key += '.';
  key += name;
  return key;
}

// Every key the file may hold, dotted: "server", "server.listen", ...
std::vector<std::string> all_known_keys() {
  std::vector<std::string> keys;
  for (const TableKeys& table : kSchema) {
    keys.emplace_back(table.table);
    for (std::string_view key : table.keys) keys.push_back(join_key(table.table, key));
  }
  return keys;
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Optimal string alignment distance, case-insensitive: a swap of two neighbours counts as one
// edit, so "listne" is one edit from "listen".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string_view leaf_of(std::string_view dotted) {
  const auto dot = dotted.rfind('.');
  return dot == std::string_view::npos ? dotted : dotted.substr(dot + 1);
}

// " (did you mean 'server.listen'?)" for a near miss in the same table, or for the same name in
// another table ("[server] level" -> 'log.level'); empty when nothing is close.
std::string suggestion(std::string_view prefix, std::string_view name,
                       std::span<const std::string_view> siblings) {
  std::string_view best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (std::string_view sibling : siblings) {
    const std::size_t distance = edit_distance(name, sibling);
    if (distance < best_distance) {
      best_distance = distance;
      best = sibling;
    }
  }
  if (best_distance <= 2 && best_distance < name.size()) {
    return "; did you mean '" + join_key(prefix, best) + "'?";
  }
  std::vector<std::string> elsewhere;
  for (const std::string& known : all_known_keys()) {
    if (edit_distance(leaf_of(known), name) == 0) elsewhere.push_back(known);
  }
  if (elsewhere.empty()) return {};
  std::string text = "; did you mean ";
  for (std::size_t i = 0; i < elsewhere.size(); ++i) {
    if (i > 0) text += " or ";
    text += "'" + elsewhere[i] + "'";
  }
  return text + "?";
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "floating-point number";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

bool is_host_char(char c) {
  // Hostnames, IPv4, IPv6 (':') with an optional zone ('%eth0').
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
         c == ':' || c == '%';
}

bool is_host_name(std::string_view host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), is_host_char);
}

struct Problem {
  std::uint32_t line = 0;  // 0 = position unknown
  std::uint32_t column = 0;
  std::string key;
  std::string reason;
};

// Collects every problem so that the one reported is the first in the file, not the first the
// checks happened to reach.
class Problems {
 public:
  explicit Problems(std::string_view source) : source_(source.empty() ? "<config>" : source) {}

  void add(const toml::source_region& where, std::string key, std::string reason) {
    problems_.push_back({where.begin.line, where.begin.column, std::move(key), std::move(reason)});
  }
  void add(std::string key, std::string reason) {
    problems_.push_back({0, 0, std::move(key), std::move(reason)});
  }
  [[nodiscard]] bool empty() const { return problems_.empty(); }

  void throw_first() const {
    if (problems_.empty()) return;
    const auto order = [](const Problem& p) {
      return std::pair{p.line == 0 ? std::numeric_limits<std::uint32_t>::max() : p.line, p.column};
    };
    const Problem& first =
        *std::min_element(problems_.begin(), problems_.end(),
                          [&](const Problem& a, const Problem& b) { return order(a) < order(b); });
    throw ConfigError(format(first.line, first.column, first.key + ": " + first.reason));
  }

  [[nodiscard]] std::string format(std::uint32_t line, std::uint32_t column,
                                   std::string_view message) const {
    std::string text = source_;
    if (line > 0) text += ":" + std::to_string(line) + ":" + std::to_string(column);
    text += ": ";
    text += message;
    return text;
  }

 private:
  std::string source_;
  std::vector<Problem> problems_;
};

// Reads the keys of one table ("server", "blue", ...), reporting wrong types and values against
// the full dotted key and the line they are on.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, Problems& problems)
      : table_(table), prefix_(std::move(prefix)), problems_(problems) {}

  [[nodiscard]] bool has(std::string_view name) const { return table_.contains(name); }
  [[nodiscard]] std::string key(std::string_view name) const { return join_key(prefix_, name); }

  void report(std::string_view name, std::string reason) {
    const toml::node* node = table_.get(name);
    problems_.add(node != nullptr ? node->source() : table_.source(), key(name), std::move(reason));
  }

  void report_missing(std::string_view name, std::string_view what) {
    problems_.add(table_.source(), key(name),
                  "missing required key (" + std::string(what) + ") in [" + prefix_ + "]");
  }

  // Unknown keys and tables are errors: a typo must not silently fall back to a default.
  // Returns how many there were.
  std::size_t reject_unknown(std::span<const std::string_view> known) {
    std::size_t unknown = 0;
    for (auto&& [name, node] : table_) {
      const std::string_view leaf = name.str();
      if (std::find(known.begin(), known.end(), leaf) != known.end()) continue;
      const std::string full = key(leaf);
      const auto& where = name.source().begin.line > 0 ? name.source() : node.source();
      problems_.add(where, full,
                    std::string(node.is_table() ? "unknown table '" : "unknown key '") + full +
                        "'" + suggestion(prefix_, leaf, known));
      ++unknown;
    }
    return unknown;
  }

  [[nodiscard]] const toml::table* read_table(std::string_view name) {
    const toml::node* node = table_.get(name);
    if (node == nullptr) return nullptr;
    if (!node->is_table()) {
      report(name, "expected a table, got " + std::string(type_name(node->type())));
      return nullptr;
    }
    return node->as_table();
  }

  [[nodiscard]] std::optional<std::string> read_string(std::string_view name) {
    const toml::node* node = table_.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_string()) {
      report(name, "expected a string, got " + std::string(type_name(node->type())));
      return std::nullopt;
    }
    std::string value = node->as_string()->get();
    // Host names, users and passwords end up in C strings and NUL-terminated protocol fields.
    if (value.find('\0') != std::string::npos) {
      report(name, "must not contain a NUL character");
      return std::nullopt;
    }
    return value;
  }

  [[nodiscard]] std::optional<std::int64_t> read_integer(std::string_view name, std::int64_t min,
                                                         std::int64_t max) {
    const toml::node* node = table_.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_integer()) {
      report(name, "expected an integer, got " + std::string(type_name(node->type())));
      return std::nullopt;
    }
    const std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      report(name, (max == kMaxInt64 ? "must be at least " + std::to_string(min)
                                     : "must be between " + std::to_string(min) + " and " +
                                           std::to_string(max)) +
                       ", got " + std::to_string(value));
      return std::nullopt;
    }
    return value;
  }

  [[nodiscard]] std::optional<bool> read_bool(std::string_view name) {
    const toml::node* node = table_.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_boolean()) {
      report(name,
             "expected a boolean (true or false), got " + std::string(type_name(node->type())));
      return std::nullopt;
    }
    return node->as_boolean()->get();
  }

  // An array of strings; each item is checked by `why_not` (empty = fine), and a problem with an
  // item points at that item, numbered from 1.
  template <typename Check>
  [[nodiscard]] std::optional<std::vector<std::string>> read_string_array(std::string_view name,
                                                                          Check why_not) {
    const toml::node* node = table_.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_array()) {
      report(name, "expected an array of strings, got " + std::string(type_name(node->type())));
      return std::nullopt;
    }
    std::vector<std::string> values;
    bool ok = true;
    std::size_t number = 0;
    for (const toml::node& item : *node->as_array()) {
      ++number;
      const std::string label = "item " + std::to_string(number) + ": ";
      if (!item.is_string()) {
        problems_.add(item.source(), key(name),
                      label + "expected a string, got " + std::string(type_name(item.type())));
        ok = false;
        continue;
      }
      std::string value = item.as_string()->get();
      std::string why = value.find('\0') != std::string::npos
                            ? std::string("must not contain a NUL character")
                            : why_not(value);
      if (why.empty()) {
        const auto same = std::find(values.begin(), values.end(), value);
        if (same != values.end()) {
          why = "'" + value + "' is listed twice (also item " +
                std::to_string(same - values.begin() + 1) + ")";
        }
      }
      if (!why.empty()) {
        problems_.add(item.source(), key(name), label + why);
        ok = false;
        // Keep the place so that later items are numbered and compared correctly.
      }
      values.push_back(std::move(value));
    }
    if (!ok) return std::nullopt;
    return values;
  }

  void read_timeout(std::string_view name, std::chrono::milliseconds& out) {
    read_milliseconds(name, 1, out);
  }

  // A duration in milliseconds from `min` up to one day.
  void read_milliseconds(std::string_view name, std::int64_t min, std::chrono::milliseconds& out) {
    if (auto value = read_integer(name, min, kMaxTimeoutMs))
      out = std::chrono::milliseconds(*value);
  }

  void read_non_negative(std::string_view name, std::int64_t& out) {
    if (auto value = read_integer(name, 0, kMaxInt64)) out = *value;
  }

  // An absolute path; `file` also rejects a trailing '/', which can only name a directory.
  void read_absolute_path(std::string_view name, bool file, std::string& out) {
    if (auto value = read_string(name)) {
      if (value->empty()) {
        report(name, "must not be empty");
      } else if (value->front() != '/') {
        report(name, "must be an absolute path (start with '/'), got '" + *value + "'");
      } else if (file && value->back() == '/') {
        report(name, "'" + *value + "' names a directory; give a file path");
      } else {
        out = std::move(*value);
      }
    }
  }

  // An absolute path, or empty for none.
  void read_optional_path(std::string_view name, std::string& out) {
    if (auto value = read_string(name)) {
      if (!value->empty() && value->front() != '/') {
        report(name, "must be an absolute path (start with '/'), got '" + *value + "'");
      } else if (!value->empty() && value->back() == '/') {
        report(name, "'" + *value + "' names a directory; give a file path");
      } else {
        out = std::move(*value);
      }
    }
  }

  void read_text(std::string_view name, std::string& out) {
    if (auto value = read_string(name)) out = std::move(*value);
  }

  void read_non_empty_text(std::string_view name, std::string& out) {
    if (auto value = read_string(name)) {
      if (value->empty()) {
        report(name, "must not be empty");
      } else {
        out = std::move(*value);
      }
    }
  }

 private:
  const toml::table& table_;
  std::string prefix_;
  Problems& problems_;
};

struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};

// Splits "host:port", "[v6]:port" or "*:port"; returns the reason on failure, empty on success.
[[nodiscard]] std::string parse_listen(std::string_view text, ListenAddress& out) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return "missing port; " + std::string(kListenExample);
    port = rest.substr(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return "missing port; " + std::string(kListenExample);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return "an IPv6 address must be in brackets, e.g. '[::1]:6432'";
    }
  }
  if (host.empty()) {
    return "missing host (use '*' for all addresses); " + std::string(kListenExample);
  }
  if (host != "*" && !is_host_name(host)) {
    return "'" + std::string(host) + "' is not a hostname or IP address";
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size()) {
    return "port '" + std::string(port) + "' is not a number; " + std::string(kListenExample);
  }
  if (value < 1 || value > 65535) {
    return "port must be between 1 and 65535, got " + std::to_string(value);
  }
  out.host = host == "*" ? "0.0.0.0" : std::string(host);
  out.port = static_cast<std::uint16_t>(value);
  return {};
}

// Why `host` cannot be an endpoint host; empty when it can.
[[nodiscard]] std::string check_endpoint_host(std::string_view host, std::string_view port_key) {
  if (host.empty()) return "must not be empty";
  if (host.front() == '/') return {};  // a Unix-socket directory
  if (host.front() == '[') return "write an IPv6 address without brackets";
  if (host.find('/') != std::string_view::npos) {
    return "a Unix-socket directory must be an absolute path (start with '/')";
  }
  if (std::count(host.begin(), host.end(), ':') == 1) {
    return "looks like 'host:port'; set the port with '" + std::string(port_key) + "'";
  }
  if (!is_host_name(host)) {
    return "'" + std::string(host) + "' is not a hostname, an IP address or an absolute directory";
  }
  return {};
}

void read_server(TableReader& reader, ServerSettings& server) {
  reader.reject_unknown(kServerKeys);
  if (auto listen = reader.read_string("listen")) {
    ListenAddress address;
    if (std::string why = parse_listen(*listen, address); !why.empty()) {
      reader.report("listen", std::move(why));
    } else {
      server.listen_host = std::move(address.host);
      server.listen_port = address.port;
    }
  }
  if (auto workers = reader.read_integer("workers", 0, kMaxWorkers)) {
    server.workers = static_cast<unsigned>(*workers);
  }
  reader.read_timeout("connect_timeout_ms", server.connect_timeout);
  reader.read_timeout("startup_timeout_ms", server.startup_timeout);
  reader.read_timeout("shutdown_timeout_ms", server.shutdown_timeout);
  if (auto size = reader.read_integer("max_message_size", kMinMessageSize, kMaxMessageSize)) {
    server.max_message_size = static_cast<std::size_t>(*size);
  }
  if (auto count = reader.read_integer("max_client_conn", 1, kMaxConnections)) {
    server.max_client_conn = static_cast<std::uint32_t>(*count);
  }
  if (auto count = reader.read_integer("max_client_conn_per_user", 0, kMaxConnections)) {
    server.max_client_conn_per_user = static_cast<std::uint32_t>(*count);
  }
  if (auto count = reader.read_integer("max_client_conn_per_database", 0, kMaxConnections)) {
    server.max_client_conn_per_database = static_cast<std::uint32_t>(*count);
  }
  reader.read_milliseconds("client_idle_timeout_ms", 0, server.client_idle_timeout);
  reader.read_milliseconds("query_wait_timeout_ms", 0, server.query_wait_timeout);
}

void read_admin(TableReader& reader, AdminSettings& admin) {
  reader.reject_unknown(kAdminKeys);
  if (auto socket = reader.read_string("socket")) {
    if (socket->empty()) {
      reader.report("socket", "must not be empty");
    } else if (socket->size() > kMaxSocketPathLength) {
      reader.report("socket", "is " + std::to_string(socket->size()) +
                                  " bytes long; a Unix socket path may have at most " +
                                  std::to_string(kMaxSocketPathLength));
    } else {
      admin.socket = std::move(*socket);
    }
  }
  if (auto database = reader.read_string("console_database")) {
    if (database->size() > kMaxDatabaseNameLength) {
      reader.report("console_database", "'" + *database + "' is " +
                                            std::to_string(database->size()) +
                                            " bytes long; a PostgreSQL database name has at most " +
                                            std::to_string(kMaxDatabaseNameLength));
    } else if (database->find('\0') != std::string::npos) {
      reader.report("console_database", "must not contain a NUL character");
    } else {
      admin.console_database = std::move(*database);
    }
  }
}

void read_metrics(TableReader& reader, MetricsSettings& metrics) {
  reader.reject_unknown(kMetricsKeys);
  if (auto listen = reader.read_string("listen")) {
    if (listen->empty()) return;  // off, as when the key is absent
    ListenAddress address;
    if (std::string why = parse_listen(*listen, address); !why.empty()) {
      reader.report("listen", std::move(why));
    } else {
      metrics.listen_host = std::move(address.host);
      metrics.listen_port = address.port;
    }
  }
}

// Why `name` cannot be a PostgreSQL role name; empty when it can.
[[nodiscard]] std::string check_role_name(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > kMaxRoleNameLength) {
    return "'" + std::string(name) + "' is " + std::to_string(name.size()) +
           " bytes long; a PostgreSQL role name has at most " + std::to_string(kMaxRoleNameLength);
  }
  return {};
}

void read_auth(TableReader& reader, AuthSettings& auth) {
  reader.reject_unknown(kAuthKeys);
  if (auto method = reader.read_string("method")) {
    if (*method == "trust") {
      auth.method = AuthMethod::kTrust;
    } else if (*method == "md5") {
      auth.method = AuthMethod::kMd5;
    } else if (*method == "scram-sha-256") {
      auth.method = AuthMethod::kScramSha256;
    } else if (*method == "cert") {
      auth.method = AuthMethod::kCert;
    } else {
      reader.report("method", "must be one of 'trust', 'md5', 'scram-sha-256', 'cert', got '" +
                                  *method + "'");
    }
  }
  reader.read_optional_path("users_file", auth.users_file);
  reader.read_text("query_user", auth.query_user);
  reader.read_text("query_password", auth.query_password);
  reader.read_text("query_database", auth.query_database);
  if (reader.has("query")) {
    reader.read_non_empty_text("query", auth.query);
    if (auth.query.find("$1") == std::string::npos) {
      reader.report("query", "must use $1 for the user name being looked up");
    }
  }
  if (auto users = reader.read_string_array("admin_users", check_role_name)) {
    auth.admin_users = std::move(*users);
  }
  if (auto users = reader.read_string_array("stats_users", check_role_name)) {
    auth.stats_users = std::move(*users);
  }
}

void read_tls(TableReader& reader, TlsSettings& tls) {
  reader.reject_unknown(kTlsKeys);
  reader.read_optional_path("cert_file", tls.cert_file);
  reader.read_optional_path("key_file", tls.key_file);
  reader.read_optional_path("client_ca_file", tls.client_ca_file);
  if (auto mode = reader.read_string("client_tls")) {
    if (*mode == "disable") {
      tls.client_tls = ClientTlsMode::kDisable;
    } else if (*mode == "allow") {
      tls.client_tls = ClientTlsMode::kAllow;
    } else if (*mode == "require") {
      tls.client_tls = ClientTlsMode::kRequire;
    } else {
      reader.report("client_tls",
                    "must be one of 'disable', 'allow', 'require', got '" + *mode + "'");
    }
  }
  // Checked only when both keys parsed: a rejected path leaves the default (empty) behind.
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    const std::string_view set = tls.cert_file.empty() ? "key_file" : "cert_file";
    const std::string_view missing = tls.cert_file.empty() ? "cert_file" : "key_file";
    reader.report(set, "is set but tls." + std::string(missing) +
                           " is not; TLS needs both the certificate and its key");
  }
  if (tls.client_tls == ClientTlsMode::kRequire && tls.cert_file.empty() && tls.key_file.empty()) {
    reader.report("client_tls", "'require' needs tls.cert_file and tls.key_file");
  }
  if (!tls.client_ca_file.empty() && tls.cert_file.empty()) {
    reader.report("client_ca_file",
                  "needs tls.cert_file and tls.key_file (client certificates "
                  "are asked for in a TLS handshake)");
  }
}

void read_log(TableReader& reader, LogSettings& log) {
  reader.reject_unknown(kLogKeys);
  if (auto level = reader.read_string("level")) {
    if (std::find(std::begin(kLogLevels), std::end(kLogLevels), *level) == std::end(kLogLevels)) {
      reader.report(
          "level",
          "must be one of trace, debug, info, warn, error, critical, off, got '" + *level + "'");
    } else {
      log.level = std::move(*level);
    }
  }
  if (auto format = reader.read_string("format")) {
    if (*format == "text") {
      log.format = LogFormat::kText;
    } else if (*format == "json") {
      log.format = LogFormat::kJson;
    } else {
      reader.report("format", "must be one of 'text', 'json', got '" + *format + "'");
    }
  }
}

std::optional<SslMode> parse_ssl_mode(std::string_view text) {
  for (SslMode mode : {SslMode::kDisable, SslMode::kPrefer, SslMode::kRequire, SslMode::kVerifyCa,
                       SslMode::kVerifyFull}) {
    if (text == to_string(mode)) return mode;
  }
  return std::nullopt;
}

void read_endpoint(TableReader& reader, Endpoint& endpoint) {
  const std::size_t unknown = reader.reject_unknown(kEndpointKeys);
  if (!reader.has("host")) {
    // With an unknown key around ("hots"), that typo is the error to show, not this.
    if (unknown == 0)
      reader.report_missing("host", "the server's hostname, IP address or socket directory");
  } else if (auto host = reader.read_string("host")) {
    if (std::string why = check_endpoint_host(*host, reader.key("port")); !why.empty()) {
      reader.report("host", std::move(why));
    } else {
      endpoint.host = std::move(*host);
    }
  }
  if (auto port = reader.read_integer("port", 1, 65535)) {
    endpoint.port = static_cast<std::uint16_t>(*port);
  }
  reader.read_text("user", endpoint.user);
  reader.read_text("password", endpoint.password);
  reader.read_text("database", endpoint.database);
  reader.read_text("admin_user", endpoint.admin_user);
  reader.read_text("admin_password", endpoint.admin_password);
  reader.read_non_empty_text("admin_database", endpoint.admin_database);
  if (auto mode = reader.read_string("sslmode")) {
    if (auto parsed = parse_ssl_mode(*mode)) {
      endpoint.sslmode = *parsed;
    } else {
      reader.report("sslmode",
                    "must be one of 'disable', 'prefer', 'require', 'verify-ca', 'verify-full', "
                    "got '" +
                        *mode + "'");
    }
  }
  if (auto root = reader.read_string("sslrootcert")) {
    if (!root->empty() && *root != "system" && root->front() != '/') {
      reader.report("sslrootcert",
                    "must be an absolute path (start with '/') or 'system', got '" + *root + "'");
    } else {
      endpoint.sslrootcert = std::move(*root);
    }
  }
  for (const auto& [name, field] :
       {std::pair{"sslcert", &endpoint.sslcert}, std::pair{"sslkey", &endpoint.sslkey}}) {
    if (auto path = reader.read_string(name)) {
      if (!path->empty() && path->front() != '/') {
        reader.report(name, "must be an absolute path (start with '/'), got '" + *path + "'");
      } else {
        *field = std::move(*path);
      }
    }
  }
  if (endpoint.sslcert.empty() != endpoint.sslkey.empty()) {
    // Named where it is set: the missing one has no place in the file.
    const bool has_cert = !endpoint.sslcert.empty();
    reader.report(has_cert ? "sslcert" : "sslkey",
                  "needs " + reader.key(has_cert ? "sslkey" : "sslcert") +
                      " too (a client certificate and its key, or neither)");
  } else if (!endpoint.sslcert.empty() && endpoint.sslmode == SslMode::kDisable) {
    reader.report("sslcert",
                  "a client certificate needs TLS, but " + reader.key("sslmode") + " is 'disable'");
  } else if (!endpoint.sslcert.empty() && endpoint.is_unix_socket()) {
    reader.report("sslcert", "a client certificate needs TLS, which a Unix socket never has");
  }
  const bool verify =
      endpoint.sslmode == SslMode::kVerifyCa || endpoint.sslmode == SslMode::kVerifyFull;
  if (verify && endpoint.sslrootcert.empty()) {
    reader.report("sslmode", "'" + std::string(to_string(endpoint.sslmode)) + "' needs " +
                                 reader.key("sslrootcert") +
                                 " (a CA file, or 'system' for the system's trust store)");
  }
  if (endpoint.is_unix_socket() && endpoint.sslmode != SslMode::kDisable &&
      endpoint.sslmode != SslMode::kPrefer) {
    reader.report("sslmode", "'" + std::string(to_string(endpoint.sslmode)) +
                                 "' cannot be met over a Unix socket (no TLS there); use "
                                 "'disable' or 'prefer', or a TCP host");
  }
  if (endpoint.is_unix_socket() && endpoint.unix_socket_path().size() > kMaxSocketPathLength) {
    reader.report("host", "socket path '" + endpoint.unix_socket_path() + "' is longer than " +
                              std::to_string(kMaxSocketPathLength) + " bytes");
  }
}

// Why `name` cannot be a database to replicate; empty when it can.
[[nodiscard]] std::string check_database_name(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > kMaxDatabaseNameLength) {
    return "'" + std::string(name) + "' is " + std::to_string(name.size()) +
           " bytes long; a PostgreSQL database name has at most " +
           std::to_string(kMaxDatabaseNameLength);
  }
  return {};
}

// Why `prefix` cannot prefix the names of pgflip's objects; empty when it can.
[[nodiscard]] std::string check_name_prefix(std::string_view prefix) {
  if (prefix.empty()) return "must not be empty";
  if (prefix.size() > kMaxNamePrefixLength) {
    return "'" + std::string(prefix) + "' is " + std::to_string(prefix.size()) +
           " characters long; at most " + std::to_string(kMaxNamePrefixLength) + " are allowed";
  }
  const auto is_lower = [](char c) { return c >= 'a' && c <= 'z'; };
  if (!is_lower(prefix.front())) {
    return "'" + std::string(prefix) + "' must start with a lower-case letter (a-z)";
  }
  const auto allowed = [&](char c) { return is_lower(c) || (c >= '0' && c <= '9') || c == '_'; };
  if (!std::all_of(prefix.begin(), prefix.end(), allowed)) {
    return "'" + std::string(prefix) +
           "' may contain only lower-case letters (a-z), digits and '_'";
  }
  return {};
}

void read_replication(TableReader& reader, ReplicationSettings& replication) {
  reader.reject_unknown(kReplicationKeys);
  if (auto databases = reader.read_string_array("databases", check_database_name)) {
    replication.databases = std::move(*databases);
  }
  reader.read_text("blue_conninfo_for_green", replication.blue_conninfo_for_green);
  if (auto prefix = reader.read_string("name_prefix")) {
    if (std::string why = check_name_prefix(*prefix); !why.empty()) {
      reader.report("name_prefix", std::move(why));
    } else {
      replication.name_prefix = std::move(*prefix);
    }
  }
  reader.read_non_negative("retained_wal_alarm_bytes", replication.retained_wal_alarm_bytes);
  reader.read_absolute_path("pg_bin_dir", /*file=*/false, replication.pg_bin_dir);
  reader.read_timeout("statement_timeout_ms", replication.statement_timeout);
  reader.read_milliseconds("heartbeat_interval_ms", 0, replication.heartbeat_interval);
}

void read_switchover(TableReader& reader, SwitchoverSettings& switchover) {
  reader.reject_unknown(kSwitchoverKeys);
  reader.read_absolute_path("state_file", /*file=*/true, switchover.state_file);
  reader.read_timeout("timeout_ms", switchover.timeout);
  reader.read_timeout("drain_timeout_ms", switchover.drain_timeout);
  reader.read_timeout("sentinel_timeout_ms", switchover.sentinel_timeout);
  reader.read_milliseconds("catchup_target_ms", 0, switchover.catchup_target);
  reader.read_milliseconds("catchup_timeout_ms", 0, switchover.catchup_timeout);
  reader.read_non_negative("max_lag_bytes", switchover.max_lag_bytes);
  reader.read_milliseconds("max_lag_ms", 0, switchover.max_lag);
  reader.read_timeout("max_transaction_age_ms", switchover.max_transaction_age);
  if (auto policy = reader.read_string("on_straggler")) {
    if (*policy == "abort") {
      switchover.on_straggler = StragglerPolicy::kAbort;
    } else if (*policy == "cancel") {
      switchover.on_straggler = StragglerPolicy::kCancel;
    } else {
      reader.report("on_straggler", "must be one of 'abort', 'cancel', got '" + *policy + "'");
    }
  }
  if (auto policy = reader.read_string("unmovable_sessions")) {
    if (*policy == "terminate") {
      switchover.unmovable_sessions = UnmovablePolicy::kTerminate;
    } else if (*policy == "abort") {
      switchover.unmovable_sessions = UnmovablePolicy::kAbort;
    } else {
      reader.report("unmovable_sessions",
                    "must be one of 'terminate', 'abort', got '" + *policy + "'");
    }
  }
  if (auto terminate = reader.read_bool("terminate_blue_backends")) {
    switchover.terminate_blue_backends = *terminate;
  }
  if (auto count = reader.read_integer("prewarm_concurrency", 1, kMaxPrewarmConcurrency)) {
    switchover.prewarm_concurrency = static_cast<std::uint32_t>(*count);
  }
}

bool same_server(const Endpoint& a, const Endpoint& b) {
  return a.host == b.host && a.port == b.port && a.database == b.database;
}

}  // namespace

std::string Endpoint::unix_socket_path() const {
  std::string_view dir = host;
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  std::string path(dir);
  if (path.back() != '/') path += '/';
  return path + ".s.PGSQL." + std::to_string(port);
}

std::string Endpoint::address() const {
  if (is_unix_socket()) return unix_socket_path();
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string_view to_string(AuthMethod method) {
  switch (method) {
    case AuthMethod::kTrust:
      return "trust";
    case AuthMethod::kMd5:
      return "md5";
    case AuthMethod::kCert:
      return "cert";
    case AuthMethod::kScramSha256:
      return "scram-sha-256";
  }
  return "unknown";
}

std::string_view to_string(SslMode mode) {
  switch (mode) {
    case SslMode::kDisable:
      return "disable";
    case SslMode::kPrefer:
      return "prefer";
    case SslMode::kRequire:
      return "require";
    case SslMode::kVerifyCa:
      return "verify-ca";
    case SslMode::kVerifyFull:
      return "verify-full";
  }
  return "unknown";
}

std::string_view to_string(ClientTlsMode mode) {
  switch (mode) {
    case ClientTlsMode::kDisable:
      return "disable";
    case ClientTlsMode::kAllow:
      return "allow";
    case ClientTlsMode::kRequire:
      return "require";
  }
  return "unknown";
}

std::string_view to_string(LogFormat format) {
  switch (format) {
    case LogFormat::kText:
      return "text";
    case LogFormat::kJson:
      return "json";
  }
  return "unknown";
}

std::string_view to_string(StragglerPolicy policy) {
  switch (policy) {
    case StragglerPolicy::kAbort:
      return "abort";
    case StragglerPolicy::kCancel:
      return "cancel";
  }
  return "unknown";
}

std::string_view to_string(UnmovablePolicy policy) {
  switch (policy) {
    case UnmovablePolicy::kTerminate:
      return "terminate";
    case UnmovablePolicy::kAbort:
      return "abort";
  }
  return "unknown";
}

std::vector<std::string> known_keys() {
  std::vector<std::string> keys;
  for (const TableKeys& table : kSchema) {
    for (std::string_view key : table.keys) keys.push_back(join_key(table.table, key));
  }
  return keys;
}

namespace {

std::string list_text(const std::vector<std::string>& items) {
  std::string text = "[";
  for (const std::string& item : items) {
    if (text.size() > 1) text += ", ";
    text += "'" + item + "'";
  }
  return text + "]";
}

std::string ms_text(std::chrono::milliseconds ms) { return std::to_string(ms.count()); }

void add_endpoint(std::string_view table, const std::optional<Endpoint>& endpoint,
                  std::vector<std::pair<std::string, std::string>>& out) {
  const auto add = [&](std::string_view key, std::string value) {
    out.emplace_back(join_key(table, key), endpoint ? std::move(value) : "(no [green])");
  };
  const Endpoint e = endpoint.value_or(Endpoint{});
  add("host", e.host);
  add("port", std::to_string(e.port));
  add("user", e.user);
  add("password", e.password);
  add("database", e.database);
  add("admin_user", e.admin_user);
  add("admin_password", e.admin_password);
  add("admin_database", e.admin_database);
  add("sslmode", std::string(to_string(e.sslmode)));
  add("sslrootcert", e.sslrootcert);
  add("sslcert", e.sslcert);
  add("sslkey", e.sslkey);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> flatten(const Config& config) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto add = [&](std::string key, std::string value) {
    out.emplace_back(std::move(key), std::move(value));
  };
  const ServerSettings& s = config.server;
  add("server.listen", s.listen_host + ":" + std::to_string(s.listen_port));
  add("server.workers", std::to_string(s.workers));
  add("server.connect_timeout_ms", ms_text(s.connect_timeout));
  add("server.startup_timeout_ms", ms_text(s.startup_timeout));
  add("server.shutdown_timeout_ms", ms_text(s.shutdown_timeout));
  add("server.max_message_size", std::to_string(s.max_message_size));
  add("server.max_client_conn", std::to_string(s.max_client_conn));
  add("server.max_client_conn_per_user", std::to_string(s.max_client_conn_per_user));
  add("server.max_client_conn_per_database", std::to_string(s.max_client_conn_per_database));
  add("server.client_idle_timeout_ms", ms_text(s.client_idle_timeout));
  add("server.query_wait_timeout_ms", ms_text(s.query_wait_timeout));
  add("admin.socket", config.admin.socket);
  add("admin.console_database", config.admin.console_database);
  add("metrics.listen", config.metrics.enabled() ? config.metrics.listen_host + ":" +
                                                       std::to_string(config.metrics.listen_port)
                                                 : std::string());
  const AuthSettings& a = config.auth;
  add("auth.method", std::string(to_string(a.method)));
  add("auth.users_file", a.users_file);
  add("auth.query", a.query);
  add("auth.query_user", a.query_user);
  add("auth.query_password", a.query_password);
  add("auth.query_database", a.query_database);
  add("auth.admin_users", list_text(a.admin_users));
  add("auth.stats_users", list_text(a.stats_users));
  add("tls.cert_file", config.tls.cert_file);
  add("tls.key_file", config.tls.key_file);
  add("tls.client_tls", std::string(to_string(config.tls.client_tls)));
  add("tls.client_ca_file", config.tls.client_ca_file);
  add_endpoint("blue", config.blue, out);
  add_endpoint("green", config.green, out);
  add("log.level", config.log.level);
  add("log.format", std::string(to_string(config.log.format)));
  const ReplicationSettings& r = config.replication;
  add("replication.databases", list_text(r.databases));
  add("replication.blue_conninfo_for_green", r.blue_conninfo_for_green);
  add("replication.name_prefix", r.name_prefix);
  add("replication.retained_wal_alarm_bytes", std::to_string(r.retained_wal_alarm_bytes));
  add("replication.pg_bin_dir", r.pg_bin_dir);
  add("replication.statement_timeout_ms", ms_text(r.statement_timeout));
  add("replication.heartbeat_interval_ms", ms_text(r.heartbeat_interval));
  const SwitchoverSettings& w = config.switchover;
  add("switchover.state_file", w.state_file);
  add("switchover.timeout_ms", ms_text(w.timeout));
  add("switchover.drain_timeout_ms", ms_text(w.drain_timeout));
  add("switchover.sentinel_timeout_ms", ms_text(w.sentinel_timeout));
  add("switchover.catchup_target_ms", ms_text(w.catchup_target));
  add("switchover.catchup_timeout_ms", ms_text(w.catchup_timeout));
  add("switchover.max_lag_bytes", std::to_string(w.max_lag_bytes));
  add("switchover.max_lag_ms", ms_text(w.max_lag));
  add("switchover.max_transaction_age_ms", ms_text(w.max_transaction_age));
  add("switchover.on_straggler", std::string(to_string(w.on_straggler)));
  add("switchover.unmovable_sessions", std::string(to_string(w.unmovable_sessions)));
  add("switchover.terminate_blue_backends", w.terminate_blue_backends ? "true" : "false");
  add("switchover.prewarm_concurrency", std::to_string(w.prewarm_concurrency));
  // Same order as known_keys(): the schema's.
  const std::vector<std::string> order = known_keys();
  std::stable_sort(out.begin(), out.end(), [&](const auto& x, const auto& y) {
    const auto rank = [&](const std::string& key) {
      return std::find(order.begin(), order.end(), key) - order.begin();
    };
    return rank(x.first) < rank(y.first);
  });
  return out;
}

std::vector<std::string> changed_keys(const Config& before, const Config& after) {
  const auto a = flatten(before);
  const auto b = flatten(after);
  std::vector<std::string> changed;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i].second != b[i].second) changed.push_back(a[i].first);
  }
  return changed;
}

Config parse_config(std::string_view toml_text, std::string_view source_name) {
  Problems problems(source_name);
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw ConfigError(
        problems.format(where.line, where.column, "syntax error: " + std::string(e.description())));
  }

  Config config;
  config.source = std::string(source_name);
  TableReader top(root, "", problems);
  top.reject_unknown(kTopLevelKeys);
  if (const toml::table* table = top.read_table("server")) {
    TableReader reader(*table, "server", problems);
    read_server(reader, config.server);
  }
  if (const toml::table* table = top.read_table("admin")) {
    TableReader reader(*table, "admin", problems);
    read_admin(reader, config.admin);
  }
  if (const toml::table* table = top.read_table("metrics")) {
    TableReader reader(*table, "metrics", problems);
    read_metrics(reader, config.metrics);
    const auto& m = config.metrics;
    const auto& server = config.server;
    const auto wildcard = [](const std::string& host) { return host == "0.0.0.0" || host == "::"; };
    if (m.enabled() && m.listen_port == server.listen_port &&
        (m.listen_host == server.listen_host || wildcard(m.listen_host) ||
         wildcard(server.listen_host))) {
      reader.report("listen", "uses the same port as server.listen (" +
                                  std::to_string(server.listen_port) + ")");
    }
  }
  if (const toml::table* table = top.read_table("auth")) {
    TableReader reader(*table, "auth", problems);
    read_auth(reader, config.auth);
  }
  if (const toml::table* table = top.read_table("tls")) {
    TableReader reader(*table, "tls", problems);
    read_tls(reader, config.tls);
  }
  if (config.auth.method == AuthMethod::kCert) {
    if (const toml::table* table = top.read_table("auth")) {  // again, to point at the key
      TableReader reader(*table, "auth", problems);
      if (!config.tls.enabled()) {
        reader.report("method",
                      "'cert' needs TLS to clients (tls.cert_file, tls.key_file, and "
                      "tls.client_tls other than 'disable')");
      } else if (config.tls.client_ca_file.empty()) {
        reader.report("method",
                      "'cert' needs tls.client_ca_file (the CA that signs the clients' "
                      "certificates)");
      }
    }
  }
  if (const toml::table* table = top.read_table("blue")) {
    TableReader reader(*table, "blue", problems);
    read_endpoint(reader, config.blue);
  } else if (!top.has("blue")) {
    problems.add("blue", "missing required table [blue] (the server pgflip serves from)");
  }
  if (const toml::table* table = top.read_table("green")) {
    TableReader reader(*table, "green", problems);
    Endpoint green;
    read_endpoint(reader, green);
    // Compared only when both parsed cleanly: a rejected host leaves the default behind.
    if (problems.empty() && same_server(config.blue, green)) {
      reader.report("host",
                    "green is the same server and database as blue (" + green.address() + ")");
    }
    config.green = std::move(green);
  }
  if (const toml::table* table = top.read_table("log")) {
    TableReader reader(*table, "log", problems);
    read_log(reader, config.log);
  }
  if (const toml::table* table = top.read_table("replication")) {
    TableReader reader(*table, "replication", problems);
    read_replication(reader, config.replication);
  }
  if (const toml::table* table = top.read_table("switchover")) {
    TableReader reader(*table, "switchover", problems);
    read_switchover(reader, config.switchover);
  }
  // Green's subscriptions log in to blue as blue.admin_user unless told otherwise: with neither,
  // green's libpq would pick the operating-system user green runs as, and replication init
  // would fail on green ("role ... does not exist"). A green.admin_user says the replication
  // manager is meant to run.
  if (const toml::table* table = top.read_table("blue");
      table != nullptr && config.green && !config.green->admin_user.empty() &&
      config.blue.admin_user.empty() && config.replication.blue_conninfo_for_green.empty()) {
    TableReader reader(*table, "blue", problems);
    reader.report("admin_user",
                  "is empty while green.admin_user is set: the replication manager logs in to "
                  "blue as blue.admin_user, and green's subscriptions reach blue as it too "
                  "(replication.blue_conninfo_for_green is empty); set blue.admin_user (and "
                  "blue.admin_password) to a superuser login on blue, or set "
                  "replication.blue_conninfo_for_green");
  }
  problems.throw_first();
  return config;
}

Config load_config_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(path + ": cannot read the configuration file: it is a directory");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    throw ConfigError(path + ": cannot read the configuration file: " +
                      (error != 0 ? std::generic_category().message(error) : "cannot open"));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    throw ConfigError(path + ": cannot read the configuration file: read error");
  }
  return parse_config(text, path);
}

}  // namespace pgflip::config
