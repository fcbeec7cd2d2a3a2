// Configuration loading: defaults, the example file, listen parsing and every error message.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

using pgflip::config::AuthMethod;
using pgflip::config::ClientTlsMode;
using pgflip::config::Config;
using pgflip::config::ConfigError;
using pgflip::config::Endpoint;
using pgflip::config::load_config_file;
using pgflip::config::LogFormat;
using pgflip::config::parse_config;
using pgflip::config::ReplicationSettings;
using pgflip::config::SslMode;
using pgflip::config::StragglerPolicy;
using pgflip::config::SwitchoverSettings;
using pgflip::config::UnmovablePolicy;

namespace {

constexpr std::string_view kBlue = "[blue]\nhost = \"db\"\n";

Config parse(std::string_view text) { return parse_config(text, "test.toml"); }

// The ConfigError message for `text`, or a failed check when it parses.
std::string error_of(std::string_view text) {
  try {
    (void)parse(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL_CHECK("no ConfigError for:\n" << text);
  return {};
}

// One file that must be refused: its text and the whole ConfigError message
// ("test.toml:LINE:COLUMN: KEY: REASON").
struct ErrorCase {
  std::string text;
  std::string message;
};

// Checks every case of a table of refused files.
template <std::size_t N>
void check_errors(const ErrorCase (&cases)[N]) {
  for (const ErrorCase& c : cases) {
    CAPTURE(c.text);
    CHECK(error_of(c.text) == c.message);
  }
}

// Every field of [replication] equals the default-constructed one.
void check_replication_defaults(const ReplicationSettings& replication) {
  const ReplicationSettings defaults;
  CHECK(replication.databases == defaults.databases);
  CHECK(replication.blue_conninfo_for_green == defaults.blue_conninfo_for_green);
  CHECK(replication.name_prefix == defaults.name_prefix);
  CHECK(replication.retained_wal_alarm_bytes == defaults.retained_wal_alarm_bytes);
  CHECK(replication.pg_bin_dir == defaults.pg_bin_dir);
  CHECK(replication.statement_timeout == defaults.statement_timeout);
  CHECK(replication.heartbeat_interval == defaults.heartbeat_interval);
}

// Every field of [switchover] equals the default-constructed one.
void check_switchover_defaults(const SwitchoverSettings& switchover) {
  const SwitchoverSettings defaults;
  CHECK(switchover.state_file == defaults.state_file);
  CHECK(switchover.timeout == defaults.timeout);
  CHECK(switchover.drain_timeout == defaults.drain_timeout);
  CHECK(switchover.sentinel_timeout == defaults.sentinel_timeout);
  CHECK(switchover.catchup_target == defaults.catchup_target);
  CHECK(switchover.catchup_timeout == defaults.catchup_timeout);
  CHECK(switchover.max_lag_bytes == defaults.max_lag_bytes);
  CHECK(switchover.max_lag == defaults.max_lag);
  CHECK(switchover.max_transaction_age == defaults.max_transaction_age);
  CHECK(switchover.on_straggler == defaults.on_straggler);
  CHECK(switchover.unmovable_sessions == defaults.unmovable_sessions);
  CHECK(switchover.terminate_blue_backends == defaults.terminate_blue_backends);
  CHECK(switchover.prewarm_concurrency == defaults.prewarm_concurrency);
}

// A file in the temporary directory, removed again at the end of the test.
class TempFile {
 public:
  explicit TempFile(std::string_view contents)
      : path_(std::filesystem::temp_directory_path() /
              ("pgflip_config_test_" + std::to_string(::getpid()) + ".toml")) {
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace

TEST_CASE("default-constructed settings match the documented defaults") {
  const Config config;
  CHECK(config.server.listen_host == "127.0.0.1");
  CHECK(config.server.listen_port == 6432);
  CHECK(config.server.workers == 0);
  CHECK(config.server.connect_timeout == std::chrono::milliseconds(5000));
  CHECK(config.server.startup_timeout == std::chrono::milliseconds(15000));
  CHECK(config.server.shutdown_timeout == std::chrono::milliseconds(30000));
  CHECK(config.server.max_message_size == 64u * 1024 * 1024);
  CHECK(config.admin.socket == "/tmp/pgflip-admin.sock");
  CHECK(config.admin.console_database == "pgflip");
  CHECK(config.server.max_client_conn == 1000);
  CHECK(config.server.max_client_conn_per_user == 0);
  CHECK(config.server.max_client_conn_per_database == 0);
  CHECK(config.server.client_idle_timeout == std::chrono::milliseconds(0));
  CHECK(config.server.query_wait_timeout == std::chrono::milliseconds(120000));
  CHECK(config.auth.method == AuthMethod::kScramSha256);
  CHECK(config.auth.users_file.empty());
  CHECK(config.auth.query_user.empty());
  CHECK(config.auth.query_password.empty());
  CHECK(config.auth.query_database.empty());
  CHECK(config.auth.query.find("$1") != std::string::npos);
  CHECK(config.auth.admin_users.empty());
  CHECK(config.auth.stats_users.empty());
  CHECK(config.tls.cert_file.empty());
  CHECK(config.tls.key_file.empty());
  CHECK(config.tls.client_tls == ClientTlsMode::kAllow);
  CHECK_FALSE(config.tls.enabled());
  CHECK(config.blue.host == "127.0.0.1");
  CHECK(config.blue.port == 5432);
  CHECK(config.blue.admin_database == "postgres");
  CHECK(config.blue.sslmode == SslMode::kPrefer);
  CHECK(config.blue.sslrootcert.empty());
  CHECK_FALSE(config.green.has_value());
  CHECK(config.log.level == "info");
  CHECK(config.replication.databases.empty());
  CHECK(config.replication.blue_conninfo_for_green.empty());
  CHECK(config.replication.name_prefix == "pgflip");
  CHECK(config.replication.retained_wal_alarm_bytes == 1073741824);
  CHECK(config.replication.pg_bin_dir == "/usr/lib/postgresql/15/bin");
  CHECK(config.replication.statement_timeout == std::chrono::milliseconds(60000));
  CHECK(config.replication.heartbeat_interval == std::chrono::milliseconds(5000));
  CHECK(config.switchover.state_file == "/var/lib/pgflip/state.json");
  CHECK(config.switchover.timeout == std::chrono::milliseconds(30000));
  CHECK(config.switchover.drain_timeout == std::chrono::milliseconds(5000));
  CHECK(config.switchover.sentinel_timeout == std::chrono::milliseconds(10000));
  CHECK(config.switchover.catchup_target == std::chrono::milliseconds(50));
  CHECK(config.switchover.catchup_timeout == std::chrono::milliseconds(10000));
  CHECK(config.switchover.max_lag_bytes == 67108864);
  CHECK(config.switchover.max_lag == std::chrono::milliseconds(5000));
  CHECK(config.switchover.max_transaction_age == std::chrono::milliseconds(60000));
  CHECK(config.switchover.on_straggler == StragglerPolicy::kAbort);
  CHECK(config.switchover.unmovable_sessions == UnmovablePolicy::kTerminate);
  CHECK(config.switchover.terminate_blue_backends);
  CHECK(config.switchover.prewarm_concurrency == 8);
}

TEST_CASE("a file with only blue.host gets every default") {
  const Config config = parse(kBlue);
  const Config defaults;
  CHECK(config.source == "test.toml");
  CHECK(config.blue.host == "db");
  CHECK(config.blue.port == 5432);
  CHECK(config.blue.user.empty());
  CHECK(config.blue.password.empty());
  CHECK(config.blue.database.empty());
  CHECK(config.blue.admin_user.empty());
  CHECK(config.blue.admin_password.empty());
  CHECK(config.blue.admin_database == "postgres");
  CHECK_FALSE(config.green.has_value());
  CHECK(config.server.listen_host == defaults.server.listen_host);
  CHECK(config.server.listen_port == defaults.server.listen_port);
  CHECK(config.server.workers == defaults.server.workers);
  CHECK(config.server.connect_timeout == defaults.server.connect_timeout);
  CHECK(config.server.startup_timeout == defaults.server.startup_timeout);
  CHECK(config.server.shutdown_timeout == defaults.server.shutdown_timeout);
  CHECK(config.server.max_message_size == defaults.server.max_message_size);
  CHECK(config.admin.socket == defaults.admin.socket);
  CHECK(config.auth.method == AuthMethod::kScramSha256);
  CHECK(config.blue.sslmode == SslMode::kPrefer);
  CHECK(config.tls.client_tls == ClientTlsMode::kAllow);
  CHECK(config.log.level == "info");
  check_replication_defaults(config.replication);
  check_switchover_defaults(config.switchover);
}

TEST_CASE("the example file parses and states the real defaults") {
  const Config config = load_config_file(PGFLIP_EXAMPLE_CONFIG);
  const Config defaults;
  CHECK(config.source == PGFLIP_EXAMPLE_CONFIG);
  CHECK(config.blue.host == "127.0.0.1");
  CHECK(config.blue.port == 5432);
  REQUIRE(config.green.has_value());
  CHECK(config.green->host == "127.0.0.1");
  CHECK(config.green->port == 5433);
  CHECK(config.green->admin_database == "postgres");
  // The example writes every key with its default value; they must not drift apart.
  CHECK(config.server.listen_host == defaults.server.listen_host);
  CHECK(config.server.listen_port == defaults.server.listen_port);
  CHECK(config.server.workers == defaults.server.workers);
  CHECK(config.server.connect_timeout == defaults.server.connect_timeout);
  CHECK(config.server.startup_timeout == defaults.server.startup_timeout);
  CHECK(config.server.shutdown_timeout == defaults.server.shutdown_timeout);
  CHECK(config.server.max_message_size == defaults.server.max_message_size);
  CHECK(config.admin.socket == defaults.admin.socket);
  CHECK(config.metrics.enabled() == defaults.metrics.enabled());
  CHECK(config.server.max_client_conn == defaults.server.max_client_conn);
  CHECK(config.server.max_client_conn_per_user == defaults.server.max_client_conn_per_user);
  CHECK(config.server.max_client_conn_per_database == defaults.server.max_client_conn_per_database);
  CHECK(config.server.client_idle_timeout == defaults.server.client_idle_timeout);
  CHECK(config.auth.method == defaults.auth.method);
  CHECK(config.auth.users_file == defaults.auth.users_file);
  CHECK(config.auth.query_user == defaults.auth.query_user);
  CHECK(config.auth.query_password == defaults.auth.query_password);
  CHECK(config.auth.query_database == defaults.auth.query_database);
  CHECK(config.auth.query == defaults.auth.query);
  CHECK(config.auth.admin_users == defaults.auth.admin_users);
  CHECK(config.auth.stats_users == defaults.auth.stats_users);
  CHECK(config.admin.console_database == defaults.admin.console_database);
  CHECK(config.tls.cert_file == defaults.tls.cert_file);
  CHECK(config.tls.key_file == defaults.tls.key_file);
  CHECK(config.tls.client_tls == defaults.tls.client_tls);
  CHECK(config.blue.sslmode == defaults.blue.sslmode);
  CHECK(config.blue.sslrootcert == defaults.blue.sslrootcert);
  CHECK(config.blue.user == defaults.blue.user);
  CHECK(config.blue.password == defaults.blue.password);
  CHECK(config.blue.database == defaults.blue.database);
  CHECK(config.blue.admin_user == defaults.blue.admin_user);
  CHECK(config.blue.admin_password == defaults.blue.admin_password);
  CHECK(config.blue.admin_database == defaults.blue.admin_database);
  CHECK(config.log.level == defaults.log.level);
  CHECK(config.log.format == defaults.log.format);
  check_replication_defaults(config.replication);
  check_switchover_defaults(config.switchover);
}

TEST_CASE("every key is read") {
  const Config config = parse(R"(
[server]
listen = "10.0.0.1:7000"
workers = 8
connect_timeout_ms = 100
startup_timeout_ms = 200
shutdown_timeout_ms = 300
max_message_size = 2048
max_client_conn = 50
max_client_conn_per_user = 5
max_client_conn_per_database = 7
client_idle_timeout_ms = 60000
query_wait_timeout_ms = 0
[admin]
socket = "/run/pgflip/admin.sock"
console_database = "pgbouncer"
[metrics]
listen = "0.0.0.0:9187"
[auth]
method = "md5"
users_file = "/etc/pgflip/users.txt"
query_user = "pgflip_auth"
query_password = "lookup"
query_database = "postgres"
query = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"
admin_users = ["ops", "dba"]
stats_users = ["monitor"]
[tls]
cert_file = "/etc/pgflip/server.crt"
key_file = "/etc/pgflip/server.key"
client_tls = "require"
[blue]
host = "blue.internal"
port = 5440
user = "app"
password = "s3cret"
database = "shop"
admin_user = "postgres"
admin_password = "root"
admin_database = "admin"
sslmode = "verify-full"
sslrootcert = "/etc/pgflip/ca.crt"
[green]
host = "::1"
port = 5441
sslmode = "disable"
[log]
level = "debug"
)");
  CHECK(config.server.listen_host == "10.0.0.1");
  CHECK(config.server.listen_port == 7000);
  CHECK(config.server.workers == 8);
  CHECK(config.server.connect_timeout == std::chrono::milliseconds(100));
  CHECK(config.server.startup_timeout == std::chrono::milliseconds(200));
  CHECK(config.server.shutdown_timeout == std::chrono::milliseconds(300));
  CHECK(config.server.max_message_size == 2048);
  CHECK(config.server.max_client_conn == 50);
  CHECK(config.server.max_client_conn_per_user == 5);
  CHECK(config.server.max_client_conn_per_database == 7);
  CHECK(config.server.client_idle_timeout == std::chrono::milliseconds(60000));
  CHECK(config.server.query_wait_timeout == std::chrono::milliseconds(0));
  CHECK(config.admin.socket == "/run/pgflip/admin.sock");
  CHECK(config.admin.console_database == "pgbouncer");
  CHECK(config.auth.stats_users == std::vector<std::string>{"monitor"});
  CHECK(config.metrics.listen_host == "0.0.0.0");
  CHECK(config.metrics.listen_port == 9187);
  CHECK(config.auth.method == AuthMethod::kMd5);
  CHECK(config.auth.users_file == "/etc/pgflip/users.txt");
  CHECK(config.auth.query_user == "pgflip_auth");
  CHECK(config.auth.query_password == "lookup");
  CHECK(config.auth.query_database == "postgres");
  CHECK(config.auth.query == "SELECT usename, passwd FROM pg_shadow WHERE usename = $1");
  CHECK(config.auth.admin_users == std::vector<std::string>{"ops", "dba"});
  CHECK(config.tls.cert_file == "/etc/pgflip/server.crt");
  CHECK(config.tls.key_file == "/etc/pgflip/server.key");
  CHECK(config.tls.client_tls == ClientTlsMode::kRequire);
  CHECK(config.tls.enabled());
  CHECK(config.blue.sslmode == SslMode::kVerifyFull);
  CHECK(config.blue.sslrootcert == "/etc/pgflip/ca.crt");
  CHECK(config.green->sslmode == SslMode::kDisable);
  CHECK(config.blue.host == "blue.internal");
  CHECK(config.blue.port == 5440);
  CHECK(config.blue.user == "app");
  CHECK(config.blue.password == "s3cret");
  CHECK(config.blue.database == "shop");
  CHECK(config.blue.admin_user == "postgres");
  CHECK(config.blue.admin_password == "root");
  CHECK(config.blue.admin_database == "admin");
  REQUIRE(config.green.has_value());
  CHECK(config.green->host == "::1");
  CHECK(config.green->port == 5441);
  CHECK(config.green->address() == "[::1]:5441");
  CHECK(config.log.level == "debug");
}

TEST_CASE("inline tables and dotted keys are ordinary TOML") {
  const Config config = parse("blue = { host = \"db\", port = 6000 }\nserver.workers = 3\n");
  CHECK(config.blue.host == "db");
  CHECK(config.blue.port == 6000);
  CHECK(config.server.workers == 3);
}

TEST_CASE("server.listen accepts host:port, bracketed IPv6 and '*'") {
  struct Case {
    std::string_view listen;
    std::string_view host;
    std::uint16_t port;
  };
  const Case cases[] = {
      {"127.0.0.1:6432", "127.0.0.1", 6432},
      {"0.0.0.0:1", "0.0.0.0", 1},
      {"*:6432", "0.0.0.0", 6432},
      {"[::1]:6432", "::1", 6432},
      {"[::]:65535", "::", 65535},
      {"localhost:7000", "localhost", 7000},
      {"[fe80::1%eth0]:6432", "fe80::1%eth0", 6432},
  };
  for (const Case& c : cases) {
    CAPTURE(c.listen);
    const Config config = parse(std::string("[server]\nlisten = \"") + std::string(c.listen) +
                                "\"\n" + std::string(kBlue));
    CHECK(config.server.listen_host == c.host);
    CHECK(config.server.listen_port == c.port);
  }
}

TEST_CASE("server.listen rejects what is not host:port, naming the key and line") {
  struct Case {
    std::string_view listen;
    std::string_view reason;
  };
  const Case cases[] = {
      {"6432",
       "missing port; expected 'host:port', e.g. '127.0.0.1:6432', '[::1]:6432' or '*:6432'"},
      {"localhost",
       "missing port; expected 'host:port', e.g. '127.0.0.1:6432', '[::1]:6432' or '*:6432'"},
      {":6432",
       "missing host (use '*' for all addresses); expected 'host:port', e.g. '127.0.0.1:6432', "
       "'[::1]:6432' or '*:6432'"},
      {"", "missing port; expected 'host:port', e.g. '127.0.0.1:6432', '[::1]:6432' or '*:6432'"},
      {"127.0.0.1:",
       "port '' is not a number; expected 'host:port', e.g. '127.0.0.1:6432', "
       "'[::1]:6432' or '*:6432'"},
      {"127.0.0.1:http",
       "port 'http' is not a number; expected 'host:port', e.g. "
       "'127.0.0.1:6432', '[::1]:6432' or '*:6432'"},
      {"127.0.0.1:-1",
       "port '-1' is not a number; expected 'host:port', e.g. '127.0.0.1:6432', "
       "'[::1]:6432' or '*:6432'"},
      {"127.0.0.1:0", "port must be between 1 and 65535, got 0"},
      {"127.0.0.1:65536", "port must be between 1 and 65535, got 65536"},
      {"::1:6432", "an IPv6 address must be in brackets, e.g. '[::1]:6432'"},
      {"[::1:6432", "missing ']' after the IPv6 address"},
      {"[::1]6432",
       "missing port; expected 'host:port', e.g. '127.0.0.1:6432', '[::1]:6432' or '*:6432'"},
      {"my host:6432", "'my host' is not a hostname or IP address"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.listen);
    CHECK(error_of(std::string(kBlue) + "[server]\nlisten = \"" + std::string(c.listen) + "\"\n") ==
          "test.toml:4:10: server.listen: " + std::string(c.reason));
  }
}

TEST_CASE("TOML syntax errors give the line, column and toml++'s description") {
  const std::string message = error_of("[blue]\nhost = \"db\"\nport = \n");
  CHECK(message.rfind("test.toml:3:8: syntax error: ", 0) == 0);
  CHECK(message.size() > std::string_view("test.toml:3:8: syntax error: ").size());

  // A key given twice is a syntax error too, at the second one.
  const std::string twice = error_of("[blue]\nhost = \"a\"\nhost = \"b\"\n");
  CHECK(twice.rfind("test.toml:3:", 0) == 0);
  CHECK(twice.find("syntax error: ") != std::string::npos);
}

TEST_CASE("unknown keys are named in full, with a suggestion when one is close") {
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[server]\nlistne = \"*:1\"\n",
       "test.toml:4:1: server.listne: unknown key 'server.listne'; did you mean "
       "'server.listen'?"},
      {"[blue]\nhots = \"db\"\n",
       "test.toml:2:1: blue.hots: unknown key 'blue.hots'; did you mean 'blue.host'?"},
      {std::string(kBlue) + "[green]\nhost = \"g\"\nPort = 1\n",
       "test.toml:5:1: green.Port: unknown key 'green.Port'; did you mean 'green.port'?"},
      // Nothing close: no suggestion.
      {std::string(kBlue) + "[server]\ncolour = 1\n",
       "test.toml:4:1: server.colour: unknown key 'server.colour'"},
      // The right name in the wrong table points at the right table.
      {std::string(kBlue) + "[server]\nlevel = \"debug\"\n",
       "test.toml:4:1: server.level: unknown key 'server.level'; did you mean 'log.level'?"},
      // Top-level keys must come before the first table header.
      {"listen = \"*:1\"\n" + std::string(kBlue),
       "test.toml:1:1: listen: unknown key 'listen'; did you mean 'server.listen' or "
       "'metrics.listen'?"},
      {"port = 1\n" + std::string(kBlue),
       "test.toml:1:1: port: unknown key 'port'; did you mean 'blue.port' or 'green.port'?"},
      // After [blue], "server = ..." is a key of blue.
      {std::string(kBlue) + "server = 5\n",
       "test.toml:3:1: blue.server: unknown key 'blue.server'; did you mean 'server'?"},
  };
  check_errors(cases);
}

TEST_CASE("unknown tables are named in full") {
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[serverr]\nlisten = \"*:1\"\n",
       "test.toml:3:2: serverr: unknown table 'serverr'; did you mean 'server'?"},
      {std::string(kBlue) + "[statistics]\n",
       "test.toml:3:2: statistics: unknown table 'statistics'"},
      {std::string(kBlue) + "[replicaton]\n",
       "test.toml:3:2: replicaton: unknown table 'replicaton'; did you mean 'replication'?"},
      {std::string(kBlue) + "[switchover.guardrails]\nmax_lag_ms = 1\n",
       "test.toml:3:13: switchover.guardrails: unknown table 'switchover.guardrails'"},
      {std::string(kBlue) + "[blue.tls]\nmode = \"require\"\n",
       "test.toml:3:7: blue.tls: unknown table 'blue.tls'; did you mean 'tls'?"},
  };
  check_errors(cases);
}

TEST_CASE("wrong types name the key, the expected and the actual type") {
  const ErrorCase cases[] = {
      {"[blue]\nhost = \"db\"\nport = \"5432\"\n",
       "test.toml:3:8: blue.port: expected an integer, got string"},
      {"[blue]\nhost = 5\n", "test.toml:2:8: blue.host: expected a string, got integer"},
      {std::string(kBlue) + "[server]\nworkers = 1.5\n",
       "test.toml:4:11: server.workers: expected an integer, got floating-point number"},
      {std::string(kBlue) + "[server]\nlisten = true\n",
       "test.toml:4:10: server.listen: expected a string, got boolean"},
      {std::string(kBlue) + "[log]\nlevel = [\"info\"]\n",
       "test.toml:4:9: log.level: expected a string, got array"},
      {"server = 5\n" + std::string(kBlue),
       "test.toml:1:10: server: expected a table, got integer"},
      {"[[blue]]\nhost = \"db\"\n", "test.toml:1:1: blue: expected a table, got array"},
  };
  check_errors(cases);
}

TEST_CASE("numbers outside their range are rejected, the bounds themselves accepted") {
  struct Case {
    std::string_view line;  // one line in [server] or [blue]
    bool server;
    std::string_view error;  // empty = valid
  };
  const Case cases[] = {
      {"port = 0", false, "blue.port: must be between 1 and 65535, got 0"},
      {"port = 65536", false, "blue.port: must be between 1 and 65535, got 65536"},
      {"port = 1", false, ""},
      {"port = 65535", false, ""},
      {"workers = -1", true, "server.workers: must be between 0 and 1024, got -1"},
      {"workers = 1025", true, "server.workers: must be between 0 and 1024, got 1025"},
      {"workers = 1024", true, ""},
      {"connect_timeout_ms = 0", true,
       "server.connect_timeout_ms: must be between 1 and 86400000, got 0"},
      {"startup_timeout_ms = -5", true,
       "server.startup_timeout_ms: must be between 1 and 86400000, got -5"},
      {"shutdown_timeout_ms = 86400001", true,
       "server.shutdown_timeout_ms: must be between 1 and 86400000, got 86400001"},
      {"shutdown_timeout_ms = 1", true, ""},
      {"max_message_size = 1023", true,
       "server.max_message_size: must be between 1024 and 1073741824, got 1023"},
      {"max_message_size = 1073741825", true,
       "server.max_message_size: must be between 1024 and 1073741824, got 1073741825"},
      {"max_message_size = 1024", true, ""},
      {"max_message_size = 1073741824", true, ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.line);
    const std::string text = c.server ? std::string(kBlue) + "[server]\n" + std::string(c.line)
                                      : "[blue]\nhost = \"db\"\n" + std::string(c.line);
    if (c.error.empty()) {
      CHECK_NOTHROW((void)parse(text));
    } else {
      const std::string message = error_of(text);
      const std::string line = c.server ? "4" : "3";
      CHECK(message.rfind("test.toml:" + line + ":", 0) == 0);
      CHECK(message.find(": " + std::string(c.error)) != std::string::npos);
    }
  }
}

TEST_CASE("[blue] and blue.host are required; [green] is optional but needs a host") {
  const ErrorCase cases[] = {
      {"",
       "test.toml: blue: missing required table [blue] (the server pgflip serves "
       "from)"},
      {"[server]\nworkers = 2\n",
       "test.toml: blue: missing required table [blue] (the server pgflip serves from)"},
      {"[log]\nlevel = \"info\"\n\n[blue]\nport = 5432\n",
       "test.toml:4:1: blue.host: missing required key (the server's hostname, IP address or "
       "socket directory) in [blue]"},
      {std::string(kBlue) + "[green]\nport = 5433\n",
       "test.toml:3:1: green.host: missing required key (the server's hostname, IP address or "
       "socket directory) in [green]"},
      // A misspelt host is reported as the typo it is, not as a missing host.
      {"[blue]\ncolour = 1\n", "test.toml:2:1: blue.colour: unknown key 'blue.colour'"},
  };
  check_errors(cases);
  CHECK(parse(std::string(kBlue) + "[green]\nhost = \"green.internal\"\n").green->host ==
        "green.internal");
}

TEST_CASE("endpoint hosts: names, addresses and absolute socket directories") {
  const Config config = parse("[blue]\nhost = \"/var/run/postgresql\"\nport = 5433\n");
  CHECK(config.blue.is_unix_socket());
  CHECK(config.blue.unix_socket_path() == "/var/run/postgresql/.s.PGSQL.5433");
  CHECK(config.blue.address() == "/var/run/postgresql/.s.PGSQL.5433");
  CHECK(parse("[blue]\nhost = \"/tmp/\"\n").blue.unix_socket_path() == "/tmp/.s.PGSQL.5432");
  CHECK(parse("[blue]\nhost = \"/\"\n").blue.unix_socket_path() == "/.s.PGSQL.5432");
  CHECK_FALSE(parse("[blue]\nhost = \"10.1.2.3\"\n").blue.is_unix_socket());
  CHECK(parse("[blue]\nhost = \"10.1.2.3\"\n").blue.address() == "10.1.2.3:5432");
  CHECK(parse("[blue]\nhost = \"2001:db8::5\"\n").blue.host == "2001:db8::5");

  const std::string long_dir = "/" + std::string(100, 'd');
  const ErrorCase cases[] = {
      {"[blue]\nhost = \"\"\n", "test.toml:2:8: blue.host: must not be empty"},
      {"[blue]\nhost = \"run/postgresql\"\n",
       "test.toml:2:8: blue.host: a Unix-socket directory must be an absolute path (start with "
       "'/')"},
      {"[blue]\nhost = \"db:5432\"\n",
       "test.toml:2:8: blue.host: looks like 'host:port'; set the port with 'blue.port'"},
      {"[blue]\nhost = \"[::1]\"\n",
       "test.toml:2:8: blue.host: write an IPv6 address without brackets"},
      {"[blue]\nhost = \"db one\"\n",
       "test.toml:2:8: blue.host: 'db one' is not a hostname, an IP address or an absolute "
       "directory"},
      {"[blue]\nhost = \"" + long_dir + "\"\n", "test.toml:2:8: blue.host: socket path '" +
                                                    long_dir +
                                                    "/.s.PGSQL.5432' is longer than 107 bytes"},
  };
  check_errors(cases);
}

TEST_CASE("strings with a NUL character are rejected") {
  CHECK(error_of("[blue]\nhost = \"db\"\nuser = \"a\\u0000b\"\n") ==
        "test.toml:3:8: blue.user: must not contain a NUL character");
}

TEST_CASE("green must not be the very server and database blue is") {
  CHECK(error_of("[blue]\nhost = \"db\"\n[green]\nhost = \"db\"\n") ==
        "test.toml:4:8: green.host: green is the same server and database as blue (db:5432)");
  CHECK_NOTHROW((void)parse("[blue]\nhost = \"db\"\n[green]\nhost = \"db\"\nport = 5433\n"));
  CHECK_NOTHROW((void)parse(
      "[blue]\nhost = \"db\"\ndatabase = \"a\"\n[green]\nhost = \"db\"\ndatabase = \"b\"\n"));
}

TEST_CASE("green's subscriptions must have a login to blue: blue.admin_user or the conninfo") {
  constexpr std::string_view kGreen = "[green]\nhost = \"g\"\nadmin_user = \"postgres\"\n";
  const std::string reason =
      "blue.admin_user: is empty while green.admin_user is set: the replication manager logs in "
      "to blue as blue.admin_user, and green's subscriptions reach blue as it too "
      "(replication.blue_conninfo_for_green is empty); set blue.admin_user (and "
      "blue.admin_password) to a superuser login on blue, or set "
      "replication.blue_conninfo_for_green";
  struct Case {
    std::string text;
    bool refused;
  };
  const Case cases[] = {
      // The key is absent: the [blue] table's line; present but empty: its own line.
      {std::string(kBlue) + std::string(kGreen), true},
      {"[blue]\nhost = \"db\"\nadmin_user = \"\"\n" + std::string(kGreen), true},
      {std::string(kBlue) + "admin_user = \"postgres\"\n" + std::string(kGreen), false},
      {std::string(kBlue) + std::string(kGreen) +
           "[replication]\nblue_conninfo_for_green = \"host=db user=replicator\"\n",
       false},
      // No green.admin_user: no replication manager is configured (blue.user plays no part).
      {std::string(kBlue) + "user = \"app\"\n[green]\nhost = \"g\"\n", false},
      {std::string(kBlue), false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    if (c.refused) {
      CHECK(error_of(c.text).ends_with(reason));
    } else {
      CHECK_NOTHROW((void)parse(c.text));
    }
  }
  CHECK(error_of("[blue]\nhost = \"db\"\nadmin_user = \"\"\n" + std::string(kGreen)) ==
        "test.toml:3:14: " + reason);
}

TEST_CASE("auth.method: trust, md5 and scram-sha-256 (the default)") {
  CHECK(parse(std::string(kBlue) + "[auth]\nmethod = \"trust\"\n").auth.method ==
        AuthMethod::kTrust);
  CHECK(parse(std::string(kBlue) + "[auth]\nmethod = \"md5\"\n").auth.method == AuthMethod::kMd5);
  CHECK(parse(std::string(kBlue) + "[auth]\nmethod = \"scram-sha-256\"\n").auth.method ==
        AuthMethod::kScramSha256);
  CHECK(parse(std::string(kBlue) + "[auth]\n").auth.method == AuthMethod::kScramSha256);
  CHECK(error_of(std::string(kBlue) + "[auth]\nmethod = \"password\"\n") ==
        "test.toml:4:10: auth.method: must be one of 'trust', 'md5', 'scram-sha-256', 'cert', "
        "got 'password'");
  CHECK(pgflip::config::to_string(AuthMethod::kTrust) == "trust");
  CHECK(pgflip::config::to_string(AuthMethod::kMd5) == "md5");
  CHECK(pgflip::config::to_string(AuthMethod::kScramSha256) == "scram-sha-256");
  CHECK(pgflip::config::to_string(AuthMethod::kCert) == "cert");
}

TEST_CASE("auth.method = cert needs TLS with tls.client_ca_file") {
  const std::string tls =
      "[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\nclient_ca_file = \"/ca.pem\"\n";
  const Config config = parse(std::string(kBlue) + "[auth]\nmethod = \"cert\"\n" + tls);
  CHECK(config.auth.method == AuthMethod::kCert);
  CHECK(config.tls.client_ca_file == "/ca.pem");
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[auth]\nmethod = \"cert\"\n",
       "test.toml:4:10: auth.method: 'cert' needs TLS to clients (tls.cert_file, tls.key_file, "
       "and tls.client_tls other than 'disable')"},
      {std::string(kBlue) + "[auth]\nmethod = \"cert\"\n" +
           "[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n",
       "test.toml:4:10: auth.method: 'cert' needs tls.client_ca_file (the CA that signs the "
       "clients' certificates)"},
      {std::string(kBlue) + "[tls]\nclient_ca_file = \"/ca.pem\"\n",
       "test.toml:4:18: tls.client_ca_file: needs tls.cert_file and tls.key_file (client "
       "certificates are asked for in a TLS handshake)"},
      {std::string(kBlue) + "[tls]\nclient_ca_file = \"ca.pem\"\n",
       "test.toml:4:18: tls.client_ca_file: must be an absolute path (start with '/'), got "
       "'ca.pem'"},
  };
  check_errors(cases);
}

TEST_CASE("[auth] paths, lookup query and admin users are checked") {
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[auth]\nusers_file = \"users.txt\"\n",
       "test.toml:4:14: auth.users_file: must be an absolute path (start with '/'), got "
       "'users.txt'"},
      {std::string(kBlue) + "[auth]\nusers_file = \"/etc/\"\n",
       "test.toml:4:14: auth.users_file: '/etc/' names a directory; give a file path"},
      {std::string(kBlue) + "[auth]\nquery = \"select 1\"\n",
       "test.toml:4:9: auth.query: must use $1 for the user name being looked up"},
      {std::string(kBlue) + "[auth]\nquery = \"\"\n",
       "test.toml:4:9: auth.query: must not be empty"},
      {std::string(kBlue) + "[auth]\nadmin_users = [\"ops\", \"\"]\n",
       "test.toml:4:23: auth.admin_users: item 2: must not be empty"},
      {std::string(kBlue) + "[auth]\nadmin_users = [\"" + std::string(64, 'a') + "\"]\n",
       "test.toml:4:16: auth.admin_users: item 1: '" + std::string(64, 'a') +
           "' is 64 bytes long; a PostgreSQL role name has at most 63"},
      {std::string(kBlue) + "[auth]\nstats_users = [\"mon\", \"mon\"]\n",
       "test.toml:4:23: auth.stats_users: item 2: 'mon' is listed twice (also item 1)"},
      {std::string(kBlue) + "[admin]\nconsole_database = \"" + std::string(64, 'd') + "\"\n",
       "test.toml:4:20: admin.console_database: '" + std::string(64, 'd') +
           "' is 64 bytes long; a PostgreSQL database name has at most 63"},
      {std::string(kBlue) + "[auth]\nadmin_users = \"ops\"\n",
       "test.toml:4:15: auth.admin_users: expected an array of strings, got string"},
      {std::string(kBlue) + "[auth]\nquery_usr = \"x\"\n",
       "test.toml:4:1: auth.query_usr: unknown key 'auth.query_usr'; did you mean "
       "'auth.query_user'?"},
  };
  check_errors(cases);
  CHECK(parse(std::string(kBlue) + "[admin]\nconsole_database = \"\"\n")
            .admin.console_database.empty());
}

TEST_CASE("[tls]: certificate and key together; require needs them") {
  const Config config =
      parse(std::string(kBlue) + "[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n");
  CHECK(config.tls.enabled());
  CHECK(config.tls.client_tls == ClientTlsMode::kAllow);
  CHECK_FALSE(parse(std::string(kBlue) + "[tls]\ncert_file = \"/c.pem\"\nkey_file = "
                                         "\"/k.pem\"\nclient_tls = \"disable\"\n")
                  .tls.enabled());
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[tls]\ncert_file = \"/c.pem\"\n",
       "test.toml:4:13: tls.cert_file: is set but tls.key_file is not; TLS needs both the "
       "certificate and its key"},
      {std::string(kBlue) + "[tls]\nkey_file = \"/k.pem\"\n",
       "test.toml:4:12: tls.key_file: is set but tls.cert_file is not; TLS needs both the "
       "certificate and its key"},
      {std::string(kBlue) + "[tls]\nclient_tls = \"require\"\n",
       "test.toml:4:14: tls.client_tls: 'require' needs tls.cert_file and tls.key_file"},
      {std::string(kBlue) + "[tls]\nclient_tls = \"prefer\"\n",
       "test.toml:4:14: tls.client_tls: must be one of 'disable', 'allow', 'require', got "
       "'prefer'"},
      {std::string(kBlue) + "[tls]\ncert_file = \"c.pem\"\nkey_file = \"/k\"\n",
       "test.toml:4:13: tls.cert_file: must be an absolute path (start with '/'), got 'c.pem'"},
  };
  check_errors(cases);
  CHECK(pgflip::config::to_string(ClientTlsMode::kDisable) == "disable");
  CHECK(pgflip::config::to_string(ClientTlsMode::kAllow) == "allow");
  CHECK(pgflip::config::to_string(ClientTlsMode::kRequire) == "require");
}

TEST_CASE("blue.sslmode and blue.sslrootcert: libpq's modes, a CA for the verifying ones") {
  for (SslMode mode : {SslMode::kDisable, SslMode::kPrefer, SslMode::kRequire, SslMode::kVerifyCa,
                       SslMode::kVerifyFull}) {
    const std::string name(pgflip::config::to_string(mode));
    CAPTURE(name);
    CHECK(parse("[blue]\nhost = \"db\"\nsslmode = \"" + name + "\"\nsslrootcert = \"/ca.pem\"\n")
              .blue.sslmode == mode);
  }
  CHECK(parse("[blue]\nhost = \"db\"\nsslmode = \"verify-full\"\nsslrootcert = \"system\"\n")
            .blue.sslrootcert == "system");
  const ErrorCase cases[] = {
      {"[blue]\nhost = \"db\"\nsslmode = \"verify-full\"\n",
       "test.toml:3:11: blue.sslmode: 'verify-full' needs blue.sslrootcert (a CA file, or "
       "'system' for the system's trust store)"},
      {"[blue]\nhost = \"db\"\n[green]\nhost = \"db2\"\nsslmode = \"verify-ca\"\n",
       "test.toml:5:11: green.sslmode: 'verify-ca' needs green.sslrootcert (a CA file, or "
       "'system' for the system's trust store)"},
      {"[blue]\nhost = \"db\"\nsslmode = \"allow\"\n",
       "test.toml:3:11: blue.sslmode: must be one of 'disable', 'prefer', 'require', "
       "'verify-ca', 'verify-full', got 'allow'"},
      {"[blue]\nhost = \"db\"\nsslrootcert = \"ca.pem\"\n",
       "test.toml:3:15: blue.sslrootcert: must be an absolute path (start with '/') or "
       "'system', got 'ca.pem'"},
      {"[blue]\nhost = \"/run/pg\"\nsslmode = \"require\"\n",
       "test.toml:3:11: blue.sslmode: 'require' cannot be met over a Unix socket (no TLS "
       "there); use 'disable' or 'prefer', or a TCP host"},
  };
  check_errors(cases);
  CHECK_NOTHROW((void)parse("[blue]\nhost = \"/run/pg\"\nsslmode = \"prefer\"\n"));
}

TEST_CASE("blue.sslcert and blue.sslkey: a client certificate, both or neither, over TLS") {
  const Config c = parse(
      "[blue]\nhost = \"db\"\nsslcert = \"/etc/pgflip/c.crt\"\nsslkey = \"/etc/pgflip/c.key\"\n");
  CHECK(c.blue.sslcert == "/etc/pgflip/c.crt");
  CHECK(c.blue.sslkey == "/etc/pgflip/c.key");
  CHECK(parse("[blue]\nhost = \"db\"\n").blue.sslcert.empty());
  const ErrorCase cases[] = {
      {"[blue]\nhost = \"db\"\nsslcert = \"/c.crt\"\n",
       "test.toml:3:11: blue.sslcert: needs blue.sslkey too (a client certificate and its key, "
       "or neither)"},
      {"[blue]\nhost = \"db\"\nsslkey = \"/c.key\"\n",
       "test.toml:3:10: blue.sslkey: needs blue.sslcert too (a client certificate and its key, "
       "or neither)"},
      {"[blue]\nhost = \"db\"\nsslcert = \"c.crt\"\nsslkey = \"/c.key\"\n",
       "test.toml:3:11: blue.sslcert: must be an absolute path (start with '/'), got 'c.crt'"},
      {"[blue]\nhost = \"db\"\nsslmode = \"disable\"\nsslcert = \"/c.crt\"\n"
       "sslkey = \"/c.key\"\n",
       "test.toml:4:11: blue.sslcert: a client certificate needs TLS, but blue.sslmode is "
       "'disable'"},
      {"[blue]\nhost = \"/run/pg\"\nsslcert = \"/c.crt\"\nsslkey = \"/c.key\"\n",
       "test.toml:3:11: blue.sslcert: a client certificate needs TLS, which a Unix socket never "
       "has"},
  };
  check_errors(cases);
}

TEST_CASE("connection limits and the idle timeout") {
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[server]\nmax_client_conn = 0\n",
       "test.toml:4:19: server.max_client_conn: must be between 1 and 1000000, got 0"},
      {std::string(kBlue) + "[server]\nmax_client_conn_per_database = -1\n",
       "test.toml:4:32: server.max_client_conn_per_database: must be between 0 and 1000000, got "
       "-1"},
      {std::string(kBlue) + "[server]\nclient_idle_timeout_ms = -5\n",
       "test.toml:4:26: server.client_idle_timeout_ms: must be between 0 and 86400000, got -5"},
  };
  check_errors(cases);
  CHECK(parse(std::string(kBlue) + "[server]\nmax_client_conn_per_user = 0\n")
            .server.max_client_conn_per_user == 0);
}

TEST_CASE("log.level must be one of the spdlog level names") {
  for (std::string_view level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    CAPTURE(level);
    CHECK(parse(std::string(kBlue) + "[log]\nlevel = \"" + std::string(level) + "\"\n").log.level ==
          level);
  }
  CHECK(error_of(std::string(kBlue) + "[log]\nlevel = \"verbose\"\n") ==
        "test.toml:4:9: log.level: must be one of trace, debug, info, warn, error, critical, off, "
        "got 'verbose'");
}

TEST_CASE("log.format is text (the default) or json") {
  CHECK(parse(kBlue).log.format == LogFormat::kText);
  CHECK(parse(std::string(kBlue) + "[log]\nformat = \"json\"\n").log.format == LogFormat::kJson);
  CHECK(parse(std::string(kBlue) + "[log]\nformat = \"text\"\n").log.format == LogFormat::kText);
  CHECK(error_of(std::string(kBlue) + "[log]\nformat = \"xml\"\n") ==
        "test.toml:4:10: log.format: must be one of 'text', 'json', got 'xml'");
  CHECK(pgflip::config::to_string(LogFormat::kJson) == "json");
}

TEST_CASE("flatten names every known key once, in known_keys() order") {
  const std::vector<std::string> keys = pgflip::config::known_keys();
  const auto flat = pgflip::config::flatten(parse(kBlue));
  REQUIRE(flat.size() == keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) CHECK(flat[i].first == keys[i]);
  CHECK(std::find(keys.begin(), keys.end(), "log.format") != keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "green.password") != keys.end());
}

TEST_CASE("changed_keys lists exactly the keys whose values differ") {
  const Config before = parse(std::string(kBlue) + "[server]\nmax_client_conn = 10\n");
  CHECK(pgflip::config::changed_keys(before, before).empty());
  const Config after = parse(std::string(kBlue) +
                             "password = \"new\"\n[server]\nmax_client_conn = 11\n"
                             "listen = \"127.0.0.1:7000\"\n[green]\nhost = \"g\"\n");
  const auto changed = pgflip::config::changed_keys(before, after);
  CHECK(std::find(changed.begin(), changed.end(), "server.max_client_conn") != changed.end());
  CHECK(std::find(changed.begin(), changed.end(), "server.listen") != changed.end());
  CHECK(std::find(changed.begin(), changed.end(), "blue.password") != changed.end());
  // [green] appearing changes every green key.
  CHECK(std::find(changed.begin(), changed.end(), "green.host") != changed.end());
  CHECK(std::find(changed.begin(), changed.end(), "green.sslmode") != changed.end());
  CHECK(std::find(changed.begin(), changed.end(), "server.workers") == changed.end());
}

TEST_CASE("admin.socket must fit a Unix socket path") {
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[admin]\nsocket = \"\"\n",
       "test.toml:4:10: admin.socket: must not be empty"},
      {std::string(kBlue) + "[admin]\nsocket = \"/" + std::string(107, 's') + "\"\n",
       "test.toml:4:10: admin.socket: is 108 bytes long; a Unix socket path may have at most 107"},
      {"[blue]\nhost = \"db\"\nadmin_database = \"\"\n",
       "test.toml:3:18: blue.admin_database: must not be empty"},
  };
  check_errors(cases);
}

TEST_CASE("metrics.listen: off by default and when empty, host:port like server.listen") {
  CHECK_FALSE(Config{}.metrics.enabled());
  CHECK_FALSE(parse(kBlue).metrics.enabled());
  CHECK_FALSE(parse(std::string(kBlue) + "[metrics]\n").metrics.enabled());
  const Config off = parse(std::string(kBlue) + "[metrics]\nlisten = \"\"\n");
  CHECK_FALSE(off.metrics.enabled());
  CHECK(off.metrics.listen_port == 0);

  const Config on = parse(std::string(kBlue) + "[metrics]\nlisten = \"127.0.0.1:9187\"\n");
  CHECK(on.metrics.enabled());
  CHECK(on.metrics.listen_host == "127.0.0.1");
  CHECK(on.metrics.listen_port == 9187);
  const Config v6 = parse(std::string(kBlue) + "[metrics]\nlisten = \"[::1]:9000\"\n");
  CHECK(v6.metrics.listen_host == "::1");
  CHECK(v6.metrics.listen_port == 9000);
  const Config any = parse(std::string(kBlue) + "[metrics]\nlisten = \"*:9187\"\n");
  CHECK(any.metrics.listen_host == "0.0.0.0");
}

TEST_CASE("metrics.listen: bad values and unknown keys name the file, key and reason") {
  const std::string metrics = std::string(kBlue) + "[metrics]\n";
  const ErrorCase cases[] = {
      {metrics + "listen = \"9187\"\n",
       "test.toml:4:10: metrics.listen: missing port; expected 'host:port', e.g. "
       "'127.0.0.1:6432', '[::1]:6432' or '*:6432'"},
      {metrics + "listen = \"127.0.0.1:0\"\n",
       "test.toml:4:10: metrics.listen: port must be between 1 and 65535, got 0"},
      {metrics + "listen = \"127.0.0.1:99999\"\n",
       "test.toml:4:10: metrics.listen: port must be between 1 and 65535, got 99999"},
      {metrics + "listen = \"my host:9187\"\n",
       "test.toml:4:10: metrics.listen: 'my host' is not a hostname or IP address"},
      {metrics + "listen = 9187\n",
       "test.toml:4:10: metrics.listen: expected a string, got integer"},
      {metrics + "lisen = \"127.0.0.1:9187\"\n",
       "test.toml:4:1: metrics.lisen: unknown key 'metrics.lisen'; did you mean "
       "'metrics.listen'?"},
      {"metrics = 1\n" + std::string(kBlue),
       "test.toml:1:11: metrics: expected a table, got integer"},
      // The client listener's own port cannot serve HTTP as well.
      {std::string(kBlue) + "[server]\nlisten = \"127.0.0.1:7000\"\n" +
           "[metrics]\nlisten = \"*:7000\"\n",
       "test.toml:6:10: metrics.listen: uses the same port as server.listen (7000)"},
      {metrics + "listen = \"127.0.0.1:6432\"\n",
       "test.toml:4:10: metrics.listen: uses the same port as server.listen (6432)"},
  };
  check_errors(cases);
  CHECK(parse(metrics + "listen = \"127.0.0.2:6432\"\n").metrics.listen_port == 6432);
}

TEST_CASE("with several mistakes, the first one in the file is reported") {
  const ErrorCase cases[] = {
      // The checks visit [blue] after [server]; the file order still decides.
      {"[blue]\nhost = \"db\"\nport = 0\n[server]\nworkers = -1\n",
       "test.toml:3:8: blue.port: must be between 1 and 65535, got 0"},
      {"[server]\nworkres = 1\n",
       "test.toml:2:1: server.workres: unknown key 'server.workres'; did you mean "
       "'server.workers'?"},
  };
  check_errors(cases);
}

TEST_CASE("empty [replication] and [switchover] tables keep the defaults") {
  const Config config = parse(std::string(kBlue) + "[replication]\n[switchover]\n");
  check_replication_defaults(config.replication);
  check_switchover_defaults(config.switchover);
  CHECK(
      parse(std::string(kBlue) + "[replication]\ndatabases = []\n").replication.databases.empty());
}

TEST_CASE("every [replication] and [switchover] key is read") {
  const Config config = parse(std::string(kBlue) + R"(
[replication]
databases = ["shop", "Billing", "a-b c"]
blue_conninfo_for_green = "host=blue.internal port=5432 user=repl password=x dbname=shop"
name_prefix = "flip_2"
retained_wal_alarm_bytes = 0
pg_bin_dir = "/usr/lib/postgresql/16/bin"
statement_timeout_ms = 1
heartbeat_interval_ms = 0
[switchover]
state_file = "/run/pgflip/state.json"
timeout_ms = 86400000
drain_timeout_ms = 2000
sentinel_timeout_ms = 3000
catchup_target_ms = 0
catchup_timeout_ms = 1500
max_lag_bytes = 0
max_lag_ms = 0
max_transaction_age_ms = 4000
on_straggler = "cancel"
unmovable_sessions = "abort"
terminate_blue_backends = false
prewarm_concurrency = 64
)");
  const ReplicationSettings& replication = config.replication;
  CHECK(replication.databases == std::vector<std::string>{"shop", "Billing", "a-b c"});
  CHECK(replication.blue_conninfo_for_green ==
        "host=blue.internal port=5432 user=repl password=x dbname=shop");
  CHECK(replication.name_prefix == "flip_2");
  CHECK(replication.retained_wal_alarm_bytes == 0);
  CHECK(replication.pg_bin_dir == "/usr/lib/postgresql/16/bin");
  CHECK(replication.statement_timeout == std::chrono::milliseconds(1));
  CHECK(replication.heartbeat_interval == std::chrono::milliseconds(0));
  const SwitchoverSettings& switchover = config.switchover;
  CHECK(switchover.state_file == "/run/pgflip/state.json");
  CHECK(switchover.timeout == std::chrono::milliseconds(86400000));
  CHECK(switchover.drain_timeout == std::chrono::milliseconds(2000));
  CHECK(switchover.sentinel_timeout == std::chrono::milliseconds(3000));
  CHECK(switchover.catchup_target == std::chrono::milliseconds(0));
  CHECK(switchover.catchup_timeout == std::chrono::milliseconds(1500));
  CHECK(switchover.max_lag_bytes == 0);
  CHECK(switchover.max_lag == std::chrono::milliseconds(0));
  CHECK(switchover.max_transaction_age == std::chrono::milliseconds(4000));
  CHECK(switchover.on_straggler == StragglerPolicy::kCancel);
  CHECK(switchover.unmovable_sessions == UnmovablePolicy::kAbort);
  CHECK_FALSE(switchover.terminate_blue_backends);
  CHECK(switchover.prewarm_concurrency == 64);

  // The other spellings, and the largest byte counts.
  const Config other = parse(std::string(kBlue) + R"(
[replication]
retained_wal_alarm_bytes = 9223372036854775807
[switchover]
max_lag_bytes = 9223372036854775807
on_straggler = "abort"
unmovable_sessions = "terminate"
terminate_blue_backends = true
)");
  CHECK(other.replication.retained_wal_alarm_bytes == INT64_MAX);
  CHECK(other.switchover.max_lag_bytes == INT64_MAX);
  CHECK(other.switchover.on_straggler == StragglerPolicy::kAbort);
  CHECK(other.switchover.unmovable_sessions == UnmovablePolicy::kTerminate);
  CHECK(other.switchover.terminate_blue_backends);
}

TEST_CASE("bad [replication] and [switchover] values name the key, line and column") {
  struct Case {
    std::string_view table;
    std::string_view line;   // the fourth line of the file, after [blue] and the table header
    std::string_view error;  // "<col>: <key>: <reason>"; empty = valid
  };
  const std::string long_db(64, 'd');
  const std::string longest_db(63, 'd');
  const std::string long_db_line = "databases = [\"" + long_db + "\"]";
  const std::string longest_db_line = "databases = [\"" + longest_db + "\"]";
  const std::string long_db_error = "14: replication.databases: item 1: '" + long_db +
                                    "' is 64 bytes long; a PostgreSQL database name has at most 63";
  const Case cases[] = {
      // replication.databases
      {"replication", "databases = \"shop\"",
       "13: replication.databases: expected an array of strings, got string"},
      {"replication", "databases = [\"shop\", 5]",
       "22: replication.databases: item 2: expected a string, got integer"},
      {"replication", "databases = [\"\"]", "14: replication.databases: item 1: must not be empty"},
      {"replication", "databases = [\"a\", \"b\", \"a\"]",
       "24: replication.databases: item 3: 'a' is listed twice (also item 1)"},
      {"replication", "databases = [\"a\\u0000b\"]",
       "14: replication.databases: item 1: must not contain a NUL character"},
      {"replication", "databases = [[\"a\"]]",
       "14: replication.databases: item 1: expected a string, got array"},
      {"replication", long_db_line, long_db_error},
      {"replication", longest_db_line, ""},
      {"replication", "databases = [\"Shop\", \"shop\"]", ""},
      // replication.blue_conninfo_for_green
      {"replication", "blue_conninfo_for_green = 5",
       "27: replication.blue_conninfo_for_green: expected a string, got integer"},
      {"replication", "blue_conninfo_for_green = \"\"", ""},
      // replication.name_prefix
      {"replication", "name_prefix = \"\"", "15: replication.name_prefix: must not be empty"},
      {"replication", "name_prefix = \"Pgflip\"",
       "15: replication.name_prefix: 'Pgflip' must start with a lower-case letter (a-z)"},
      {"replication", "name_prefix = \"_pgflip\"",
       "15: replication.name_prefix: '_pgflip' must start with a lower-case letter (a-z)"},
      {"replication", "name_prefix = \"9lives\"",
       "15: replication.name_prefix: '9lives' must start with a lower-case letter (a-z)"},
      {"replication", "name_prefix = \"pg-flip\"",
       "15: replication.name_prefix: 'pg-flip' may contain only lower-case letters (a-z), digits "
       "and '_'"},
      {"replication", "name_prefix = \"pgFlip\"",
       "15: replication.name_prefix: 'pgFlip' may contain only lower-case letters (a-z), digits "
       "and '_'"},
      {"replication", "name_prefix = \"abcdefghijklmnopqrstu\"",
       "15: replication.name_prefix: 'abcdefghijklmnopqrstu' is 21 characters long; at most 20 "
       "are allowed"},
      {"replication", "name_prefix = \"abcdefghijklmnopqrst\"", ""},
      {"replication", "name_prefix = \"p\"", ""},
      // replication.retained_wal_alarm_bytes
      {"replication", "retained_wal_alarm_bytes = -1",
       "28: replication.retained_wal_alarm_bytes: must be at least 0, got -1"},
      {"replication", "retained_wal_alarm_bytes = \"1GB\"",
       "28: replication.retained_wal_alarm_bytes: expected an integer, got string"},
      // replication.pg_bin_dir
      {"replication", "pg_bin_dir = \"\"", "14: replication.pg_bin_dir: must not be empty"},
      {"replication", "pg_bin_dir = \"bin\"",
       "14: replication.pg_bin_dir: must be an absolute path (start with '/'), got 'bin'"},
      {"replication", "pg_bin_dir = \"/usr/bin/\"", ""},
      // replication timeouts
      {"replication", "statement_timeout_ms = 0",
       "24: replication.statement_timeout_ms: must be between 1 and 86400000, got 0"},
      {"replication", "statement_timeout_ms = 86400001",
       "24: replication.statement_timeout_ms: must be between 1 and 86400000, got 86400001"},
      {"replication", "heartbeat_interval_ms = -1",
       "25: replication.heartbeat_interval_ms: must be between 0 and 86400000, got -1"},
      {"replication", "heartbeat_interval_ms = 86400001",
       "25: replication.heartbeat_interval_ms: must be between 0 and 86400000, got 86400001"},
      {"replication", "heartbeat_interval_ms = 1.5",
       "25: replication.heartbeat_interval_ms: expected an integer, got floating-point number"},
      // switchover.state_file
      {"switchover", "state_file = \"\"", "14: switchover.state_file: must not be empty"},
      {"switchover", "state_file = \"state.json\"",
       "14: switchover.state_file: must be an absolute path (start with '/'), got 'state.json'"},
      {"switchover", "state_file = \"/var/lib/pgflip/\"",
       "14: switchover.state_file: '/var/lib/pgflip/' names a directory; give a file path"},
      // switchover timeouts
      {"switchover", "timeout_ms = 0",
       "14: switchover.timeout_ms: must be between 1 and 86400000, got 0"},
      {"switchover", "timeout_ms = 86400001",
       "14: switchover.timeout_ms: must be between 1 and 86400000, got 86400001"},
      {"switchover", "drain_timeout_ms = 0",
       "20: switchover.drain_timeout_ms: must be between 1 and 86400000, got 0"},
      {"switchover", "sentinel_timeout_ms = -1",
       "23: switchover.sentinel_timeout_ms: must be between 1 and 86400000, got -1"},
      {"switchover", "catchup_target_ms = -5",
       "21: switchover.catchup_target_ms: must be between 0 and 86400000, got -5"},
      {"switchover", "catchup_timeout_ms = 0", ""},
      {"switchover", "max_transaction_age_ms = 0",
       "26: switchover.max_transaction_age_ms: must be between 1 and 86400000, got 0"},
      {"switchover", "max_transaction_age_ms = 86400001",
       "26: switchover.max_transaction_age_ms: must be between 1 and 86400000, got 86400001"},
      {"switchover", "max_transaction_age_ms = 1", ""},
      // switchover guardrails
      {"switchover", "max_lag_bytes = -1",
       "17: switchover.max_lag_bytes: must be at least 0, got -1"},
      {"switchover", "max_lag_ms = -1",
       "14: switchover.max_lag_ms: must be between 0 and 86400000, got -1"},
      {"switchover", "max_lag_ms = 86400001",
       "14: switchover.max_lag_ms: must be between 0 and 86400000, got 86400001"},
      // switchover policies
      {"switchover", "on_straggler = \"wait\"",
       "16: switchover.on_straggler: must be one of 'abort', 'cancel', got 'wait'"},
      {"switchover", "on_straggler = \"Abort\"",
       "16: switchover.on_straggler: must be one of 'abort', 'cancel', got 'Abort'"},
      {"switchover", "on_straggler = true",
       "16: switchover.on_straggler: expected a string, got boolean"},
      {"switchover", "unmovable_sessions = \"cancel\"",
       "22: switchover.unmovable_sessions: must be one of 'terminate', 'abort', got 'cancel'"},
      {"switchover", "terminate_blue_backends = \"yes\"",
       "27: switchover.terminate_blue_backends: expected a boolean (true or false), got string"},
      {"switchover", "prewarm_concurrency = 0",
       "23: switchover.prewarm_concurrency: must be between 1 and 10000, got 0"},
      {"switchover", "terminate_blue_backends = 1",
       "27: switchover.terminate_blue_backends: expected a boolean (true or false), got integer"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.line);
    const std::string text =
        std::string(kBlue) + "[" + std::string(c.table) + "]\n" + std::string(c.line) + "\n";
    if (c.error.empty()) {
      CHECK_NOTHROW((void)parse(text));
    } else {
      CHECK(error_of(text) == "test.toml:4:" + std::string(c.error));
    }
  }
  const ErrorCase more[] = {
      // The table itself must be a table.
      {std::string(kBlue) + "replication = true\n",
       "test.toml:3:1: blue.replication: unknown key 'blue.replication'; did you mean "
       "'replication'?"},
      {"switchover = 5\n" + std::string(kBlue),
       "test.toml:1:14: switchover: expected a table, got integer"},
      // With several bad items, the first one in the file is reported.
      {std::string(kBlue) + "[replication]\ndatabases = [\"a\", \"\", 7]\n",
       "test.toml:4:19: replication.databases: item 2: must not be empty"},
  };
  check_errors(more);
}

TEST_CASE("unknown keys in [replication] and [switchover] suggest the right one") {
  const ErrorCase cases[] = {
      {std::string(kBlue) + "[replication]\ndatabase = [\"shop\"]\n",
       "test.toml:4:1: replication.database: unknown key 'replication.database'; did you mean "
       "'replication.databases'?"},
      {std::string(kBlue) + "[replication]\nname_prefx = \"x\"\n",
       "test.toml:4:1: replication.name_prefx: unknown key 'replication.name_prefx'; did you "
       "mean 'replication.name_prefix'?"},
      {std::string(kBlue) + "[replication]\nheartbeat_interval = 1000\n",
       "test.toml:4:1: replication.heartbeat_interval: unknown key "
       "'replication.heartbeat_interval'"},
      {std::string(kBlue) + "[switchover]\ntimeuot_ms = 1\n",
       "test.toml:4:1: switchover.timeuot_ms: unknown key 'switchover.timeuot_ms'; did you mean "
       "'switchover.timeout_ms'?"},
      {std::string(kBlue) + "[switchover]\nmax_lag_byte = 1\n",
       "test.toml:4:1: switchover.max_lag_byte: unknown key 'switchover.max_lag_byte'; did you "
       "mean 'switchover.max_lag_bytes'?"},
      {std::string(kBlue) + "[switchover]\non_stragler = \"abort\"\n",
       "test.toml:4:1: switchover.on_stragler: unknown key 'switchover.on_stragler'; did you "
       "mean 'switchover.on_straggler'?"},
      // The right name in the wrong table points at the right table.
      {std::string(kBlue) + "[switchover]\nstatement_timeout_ms = 1\n",
       "test.toml:4:1: switchover.statement_timeout_ms: unknown key "
       "'switchover.statement_timeout_ms'; did you mean 'replication.statement_timeout_ms'?"},
      {std::string(kBlue) + "[replication]\nstate_file = \"/x\"\n",
       "test.toml:4:1: replication.state_file: unknown key 'replication.state_file'; did you "
       "mean 'switchover.state_file'?"},
      {std::string(kBlue) + "[server]\nmax_lag_ms = 1\n",
       "test.toml:4:1: server.max_lag_ms: unknown key 'server.max_lag_ms'; did you mean "
       "'switchover.max_lag_ms'?"},
      // The admin login lives in [blue]/[green], not here.
      {std::string(kBlue) + "[replication]\nadmin_user = \"postgres\"\n",
       "test.toml:4:1: replication.admin_user: unknown key 'replication.admin_user'; did you "
       "mean 'blue.admin_user' or 'green.admin_user'?"},
  };
  check_errors(cases);
}

TEST_CASE("switchover policies print as they are spelt in the file") {
  CHECK(pgflip::config::to_string(StragglerPolicy::kAbort) == "abort");
  CHECK(pgflip::config::to_string(StragglerPolicy::kCancel) == "cancel");
  CHECK(pgflip::config::to_string(UnmovablePolicy::kTerminate) == "terminate");
  CHECK(pgflip::config::to_string(UnmovablePolicy::kAbort) == "abort");
}

TEST_CASE("load_config_file reads a file and names it in errors") {
  {
    const TempFile file("[blue]\nhost = \"db\"\nport = 6000\n");
    const Config config = load_config_file(file.path());
    CHECK(config.source == file.path());
    CHECK(config.blue.port == 6000);
  }
  {
    const TempFile file("[blue]\nhost = \"db\"\nport = 0\n");
    CHECK_THROWS_WITH_AS(
        (void)load_config_file(file.path()),
        (file.path() + ":3:8: blue.port: must be between 1 and 65535, got 0").c_str(), ConfigError);
  }
}

TEST_CASE("a missing or unreadable file is an error that names the path") {
  const std::string missing = "/nonexistent/pgflip/missing.toml";
  CHECK_THROWS_WITH_AS(
      (void)load_config_file(missing),
      (missing + ": cannot read the configuration file: No such file or directory").c_str(),
      ConfigError);
  const std::string directory = std::filesystem::temp_directory_path().string();
  CHECK_THROWS_WITH_AS(
      (void)load_config_file(directory),
      (directory + ": cannot read the configuration file: it is a directory").c_str(), ConfigError);
}

TEST_CASE("mangled files give a Config or a ConfigError, nothing else") {
  std::ifstream in(PGFLIP_EXAMPLE_CONFIG, std::ios::binary);
  const std::string example((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(!example.empty());
  std::mt19937 random(20240601);
  std::uniform_int_distribution<std::size_t> position(0, example.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  int rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string text = example;
    for (int flips = 0; flips < 1 + i % 4; ++flips) {
      text[position(random)] = static_cast<char>(byte(random));
    }
    text.resize(position(random) + 1);
    try {
      (void)parse(text);
    } catch (const ConfigError&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
}
