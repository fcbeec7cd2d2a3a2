// pgflip's configuration: the settings structs, their defaults, and the TOML loader.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgflip::config {

/// How pgflip authenticates its own clients (not how it logs in to servers).
enum class AuthMethod {
  kTrust,
  kMd5,
  kScramSha256,
  kCert,  // a TLS client certificate from tls.client_ca_file's CA whose CN is the user name
};

/// libpq's sslmode, for pgflip's own connections to a server.
/// https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION
enum class SslMode {
  kDisable,     // never TLS
  kPrefer,      // TLS when the server offers it, else plain; the certificate is not checked
  kRequire,     // TLS or fail; the certificate is checked only if sslrootcert is set (as libpq)
  kVerifyCa,    // TLS, certificate signed by sslrootcert's CA
  kVerifyFull,  // verify-ca, and the certificate names the host
};

/// Whether pgflip speaks TLS to its clients (the [tls] table's client_tls).
enum class ClientTlsMode {
  kDisable,  // SSLRequest is answered 'N'
  kAllow,    // TLS for clients that ask for it, plain TCP for the others
  kRequire,  // clients without TLS are refused (SQLSTATE 28000)
};

/// One PostgreSQL server: the [blue] or [green] table.
struct Endpoint {
  /// Hostname, IP address, or an absolute Unix-socket directory (starts with '/').
  std::string host = "127.0.0.1";
  std::uint16_t port = 5432;
  /// Server login user for application sessions; empty = the client's user passes through.
  std::string user;
  /// Password for that login (cleartext/MD5/SCRAM as the server asks); may be empty.
  std::string password;
  /// Empty = the client's database passes through.
  std::string database;
  /// Administrative login for the replication manager; empty = none.
  std::string admin_user;
  std::string admin_password;
  std::string admin_database = "postgres";
  /// TLS for pgflip's connections to this server, as libpq's sslmode. Not used over a
  /// Unix socket.
  SslMode sslmode = SslMode::kPrefer;
  /// CA certificate file (PEM) for verify-ca/verify-full (and require); "system" = the system's
  /// trust store; empty = none.
  std::string sslrootcert;
  /// Client certificate (PEM, may hold a chain) and its private key that pgflip presents to
  /// this server over TLS (pg_hba `cert`, or `clientcert=verify-ca|verify-full`): both or
  /// neither; empty = none.
  std::string sslcert;
  std::string sslkey;

  [[nodiscard]] bool is_unix_socket() const { return !host.empty() && host.front() == '/'; }
  /// The socket file libpq would use: "<host>/.s.PGSQL.<port>". Only meaningful for a socket host.
  [[nodiscard]] std::string unix_socket_path() const;
  /// For logs: "host:port", "[v6addr]:port", or the socket file path.
  [[nodiscard]] std::string address() const;
};

/// The [server] table: the client-facing listener and its limits.
struct ServerSettings {
  /// From server.listen "host:port"; "[::1]:6432" and "*:6432" (= "0.0.0.0") are accepted.
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 6432;
  /// 0 = one per core.
  unsigned workers = 0;
  /// server.connect_timeout_ms: connecting and logging in to a server.
  std::chrono::milliseconds connect_timeout{5000};
  /// server.startup_timeout_ms: a client must finish startup and authentication within this.
  std::chrono::milliseconds startup_timeout{15000};
  /// server.shutdown_timeout_ms: SIGTERM waits this long for sessions to finish.
  std::chrono::milliseconds shutdown_timeout{30000};
  /// server.max_message_size in bytes; a larger message is a protocol violation.
  std::size_t max_message_size = std::size_t{64} * 1024 * 1024;
  /// server.max_client_conn: client connections at once, authenticated or not (SQLSTATE 53300).
  std::uint32_t max_client_conn = 1000;
  /// server.max_client_conn_per_user: authenticated client connections per user name; 0 = no
  /// limit.
  std::uint32_t max_client_conn_per_user = 0;
  /// server.max_client_conn_per_database: authenticated client connections per database; 0 = no
  /// limit.
  std::uint32_t max_client_conn_per_database = 0;
  /// server.client_idle_timeout_ms: a client idle (outside a transaction, nothing outstanding)
  /// this long is closed with SQLSTATE 57P05; 0 = never.
  std::chrono::milliseconds client_idle_timeout{0};
  /// server.query_wait_timeout_ms: while pgflip is paused (PAUSE), a request held longer than
  /// this ends its session with FATAL 57014; 0 = wait until RESUME.
  std::chrono::milliseconds query_wait_timeout{120000};
};

/// The [tls] table: TLS between clients and pgflip.
struct TlsSettings {
  /// PEM certificate (chain) and private key pgflip presents; both or neither.
  std::string cert_file;
  std::string key_file;
  /// tls.client_tls.
  ClientTlsMode client_tls = ClientTlsMode::kAllow;
  /// CA certificates (PEM) that sign clients' certificates; when set, clients are asked for
  /// one during the handshake (a certificate it cannot verify fails the handshake).
  std::string client_ca_file;

  /// Whether TLS is offered to clients at all.
  [[nodiscard]] bool enabled() const {
    return !cert_file.empty() && client_tls != ClientTlsMode::kDisable;
  }
};

/// The [admin] table.
struct AdminSettings {
  /// Unix socket that pgflipctl talks to.
  std::string socket = "/tmp/pgflip-admin.sock";
  /// admin.console_database: a client connecting to this database name through the normal
  /// listener gets pgflip's admin console instead of a server; empty = no console.
  std::string console_database = "pgflip";
};

/// The [metrics] table: Prometheus metrics and a health check over HTTP.
struct MetricsSettings {
  /// From metrics.listen "host:port" (same forms as server.listen); an empty or absent key
  /// leaves the HTTP endpoint off (listen_port 0).
  std::string listen_host;
  std::uint16_t listen_port = 0;

  [[nodiscard]] bool enabled() const { return listen_port != 0; }
};

/// The [auth] table: how clients authenticate to pgflip.
struct AuthSettings {
  AuthMethod method = AuthMethod::kScramSha256;
  /// PgBouncer-style userlist.txt: "user" "plaintext | md5... | SCRAM-SHA-256$..." per line.
  /// Read when pgflip starts; empty = none.
  std::string users_file;
  /// auth.query_user: when set, users missing from users_file are looked up on the active
  /// server with auth.query, logged in as this user (like PgBouncer's auth_user).
  std::string query_user;
  std::string query_password;
  /// Database the lookup connects to; empty = the one the client asked for.
  std::string query_database;
  /// Takes the user name as $1; returns (name, secret) or no row.
  std::string query =
      "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "
      "FROM pg_authid WHERE rolname = $1 AND rolcanlogin";
  /// Users allowed every admin console command.
  std::vector<std::string> admin_users;
  /// Users allowed the admin console's read-only commands (SHOW ...).
  std::vector<std::string> stats_users;
};

/// How log lines look (the [log] table's format).
enum class LogFormat {
  kText,  // "2025-01-31 12:00:00.123 info [c42] message"
  kJson,  // one JSON object per line: ts, level, msg, conn, ...
};

/// The [log] table.
struct LogSettings {
  /// One of trace, debug, info, warn, error, critical, off.
  std::string level = "info";
  /// log.format = "text" | "json".
  LogFormat format = LogFormat::kText;
};

/// The [replication] table: the embedded replication manager (blue → green logical replication).
/// The manager logs in with the admin_user/admin_password/admin_database of [blue] and [green].
struct ReplicationSettings {
  /// replication.databases: empty = every non-template database on blue.
  std::vector<std::string> databases;
  /// replication.blue_conninfo_for_green: how green's subscription reaches blue; empty = built
  /// from [blue] host/port/admin_user/admin_password.
  std::string blue_conninfo_for_green;
  /// replication.name_prefix: lower-case letters, digits, '_'; starts with a letter; at most 20
  /// chars.
  std::string name_prefix = "pgflip";
  /// replication.retained_wal_alarm_bytes (>= 0).
  std::int64_t retained_wal_alarm_bytes = std::int64_t{1} << 30;
  /// replication.pg_bin_dir: pg_dump, pg_dumpall, psql for schema/role copy (absolute path).
  std::string pg_bin_dir = "/usr/lib/postgresql/15/bin";
  /// replication.statement_timeout_ms.
  std::chrono::milliseconds statement_timeout{60000};
  /// replication.heartbeat_interval_ms: the daemon polls replication status this often (each
  /// poll writes a heartbeat row on blue, from which green's lag in seconds is measured, and
  /// refreshes the lag metrics); 0 = off.
  std::chrono::milliseconds heartbeat_interval{5000};
};

/// What a switchover does with a blue transaction that is still open at the drain deadline.
enum class StragglerPolicy { kAbort, kCancel };
/// What a switchover does with sessions that cannot move (temp tables / WITH HOLD cursors).
enum class UnmovablePolicy { kTerminate, kAbort };

/// The [switchover] table: guardrails, deadlines and the durable decision.
struct SwitchoverSettings {
  /// switchover.state_file: durable record of the active environment (absolute path).
  std::string state_file = "/var/lib/pgflip/state.json";
  /// switchover.timeout_ms: the whole switchover before the commit point.
  std::chrono::milliseconds timeout{30000};
  /// switchover.drain_timeout_ms: parking (sessions reach a transaction boundary).
  std::chrono::milliseconds drain_timeout{5000};
  /// switchover.sentinel_timeout_ms: green applies everything up to the sentinel.
  std::chrono::milliseconds sentinel_timeout{10000};
  /// switchover.catchup_target_ms: before parking anyone, sentinels are written while clients
  /// run until one reaches green within this; clients are then parked only for what remains.
  std::chrono::milliseconds catchup_target{50};
  /// switchover.catchup_timeout_ms: how long to try for that; then the switchover goes on and
  /// the drain (bounded by sentinel_timeout_ms) absorbs the rest. 0 = skip the catch-up.
  std::chrono::milliseconds catchup_timeout{10000};
  /// switchover.max_lag_bytes: guardrail.
  std::int64_t max_lag_bytes = std::int64_t{64} * 1024 * 1024;
  /// switchover.max_lag_ms: guardrail (heartbeat lag).
  std::chrono::milliseconds max_lag{5000};
  /// switchover.max_transaction_age_ms: guardrail, no blue transaction older than this.
  std::chrono::milliseconds max_transaction_age{60000};
  /// switchover.on_straggler = "abort" | "cancel".
  StragglerPolicy on_straggler = StragglerPolicy::kAbort;
  /// switchover.unmovable_sessions = "terminate" | "abort".
  UnmovablePolicy unmovable_sessions = UnmovablePolicy::kTerminate;
  /// switchover.prewarm_concurrency: green logins the prewarm step has in flight at once (each
  /// forks a backend on green while clients still run on blue).
  std::uint32_t prewarm_concurrency = 8;
  /// switchover.terminate_blue_backends: the fence terminates the other backends on blue
  /// (client backends, and non-superusers' walsenders and workers) but pgflip's own.
  bool terminate_blue_backends = true;
};

/// A whole, validated configuration.
struct Config {
  /// The file path (or source name) the configuration was read from.
  std::string source;
  ServerSettings server;
  AdminSettings admin;
  MetricsSettings metrics;
  AuthSettings auth;
  TlsSettings tls;
  Endpoint blue;
  std::optional<Endpoint> green;
  LogSettings log;
  ReplicationSettings replication;
  SwitchoverSettings switchover;
};

/// A configuration that cannot be used. what() is "<file>:<line>:<col>: <key>: <reason>"; line and
/// column are left out when unknown (a missing file or table).
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads and validates the TOML file at `path`. Throws ConfigError, also when it cannot be read.
[[nodiscard]] Config load_config_file(const std::string& path);

/// Validates TOML text; `source_name` is used in error messages and as Config::source.
/// Throws ConfigError.
[[nodiscard]] Config parse_config(std::string_view toml_text, std::string_view source_name);

/// Every key the file may hold, dotted ("server.listen", "blue.host", ...); tables not included.
[[nodiscard]] std::vector<std::string> known_keys();

/// Every key of `config` with its value as text, in known_keys() order; the keys of an absent
/// [green] have the value "(no [green])". For comparing configurations: it holds passwords,
/// never log or show the values.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> flatten(const Config& config);

/// The dotted keys whose values differ between `before` and `after`.
[[nodiscard]] std::vector<std::string> changed_keys(const Config& before, const Config& after);

/// "trust", "md5" or "scram-sha-256": the spelling used in the file.
[[nodiscard]] std::string_view to_string(AuthMethod method);

/// "disable", "prefer", "require", "verify-ca" or "verify-full".
[[nodiscard]] std::string_view to_string(SslMode mode);

/// "disable", "allow" or "require".
[[nodiscard]] std::string_view to_string(ClientTlsMode mode);

/// "text" or "json": the spelling used in the file.
[[nodiscard]] std::string_view to_string(LogFormat format);

/// "abort" or "cancel": the spelling used in the file.
[[nodiscard]] std::string_view to_string(StragglerPolicy policy);

/// "terminate" or "abort": the spelling used in the file.
[[nodiscard]] std::string_view to_string(UnmovablePolicy policy);

}  // namespace pgflip::config
