// pgflip's own metrics: what sessions, logins, the switchover and the replication poller count,
// exposed by the metrics endpoint and summarised by `show stats`.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/observe/metrics.hpp"

namespace pgflip::proxy {

/// ErrorResponses by SQLSTATE: a fixed table filled without locks or allocation. Codes beyond
/// its size (or not five characters of 0-9 and A-Z) count as "other", which also bounds the
/// number of series a client could create with RAISE ... SQLSTATE.
class SqlstateCounts {
 public:
  void add(std::string_view sqlstate) noexcept;
  /// (code, count) sorted by code; "other" last when non-zero.
  [[nodiscard]] std::vector<std::pair<std::string, std::uint64_t>> snapshot() const;
  [[nodiscard]] std::uint64_t total() const;

  static constexpr std::size_t kSlots = 64;

 private:
  struct Slot {
    std::atomic<std::uint32_t> code{0};  // packed SQLSTATE; 0 = free
    std::atomic<std::uint64_t> count{0};
  };
  std::array<Slot, kSlots> slots_;
  std::atomic<std::uint64_t> other_{0};
};

/// The counters of one server database. Made at a session's first login to that database and
/// never freed, so sessions keep a plain pointer.
struct DatabaseStats {
  std::string name;
  metrics::Counter* queries;
  metrics::Counter* transactions;
  metrics::Counter* bytes_received;  // from clients
  metrics::Counter* bytes_sent;      // to clients
  metrics::Histogram* query_duration;
  SqlstateCounts errors;
};

/// Why a client connection did not become a session.
enum class LoginFailure : std::uint8_t {
  kAuth,      // client authentication failed or was abandoned
  kLimit,     // max_client_conn_per_user / _per_database
  kServer,    // the server refused pgflip's login, or could not be reached
  kTimeout,   // server.startup_timeout_ms passed
  kProtocol,  // bad startup packet, encryption negotiation, refused options
};
inline constexpr std::size_t kLoginFailureCount = 5;

/// A session as a scrape sees it (published by the session with one relaxed store).
enum class ClientState : std::uint8_t {
  kLogin,              // startup, authentication or server login
  kIdle,               // nothing outstanding, outside a transaction
  kActive,             // a request sent, its ReadyForQuery not yet relayed
  kIdleInTransaction,  // inside a transaction block, nothing outstanding
  kParked,             // its next request is held by a switchover
  kClosing,
  kConsole,  // an admin console session (no server connection)
};
inline constexpr std::size_t kClientStateCount = 7;
[[nodiscard]] std::string_view to_string(ClientState state);

struct SessionView {
  ClientState client = ClientState::kLogin;
  bool has_server = false;    // a server connection exists (or is logging in)
  bool server_login = false;  // that connection is still logging in
  bool green = false;         // it belongs to green
  bool prewarmed = false;     // a switchover holds a second, green connection for it
};

class ProxyMetrics {
 public:
  ProxyMetrics();
  ProxyMetrics(const ProxyMetrics&) = delete;
  ProxyMetrics& operator=(const ProxyMetrics&) = delete;

  /// The counters of `database` (made on first use; locks: once per login, not per query).
  [[nodiscard]] DatabaseStats& database(const std::string& database);
  /// Every database seen so far, by name.
  [[nodiscard]] std::vector<const DatabaseStats*> databases() const;

  /// Calls its argument once per live session's view.
  using SessionVisitor = std::function<void(const std::function<void(const SessionView&)>&)>;
  /// Client gauges and the active environment are computed at each scrape from these.
  void watch_sessions(SessionVisitor sessions, std::function<std::string()> active_environment);
  /// Each certificate pgflip presents, by label ("tls.cert_file", "blue.sslcert"), and its
  /// expiry as Unix time.
  using CertificateExpiries = std::function<std::vector<std::pair<std::string, double>>()>;
  /// The expiry of every certificate pgflip presents (to clients, and to the servers when
  /// sslcert is set) is read at each scrape from the TLS contexts in force.
  void watch_certificates(CertificateExpiries certificates);

  /// The exposition text (runs the scrape-time collectors).
  [[nodiscard]] std::string render() const { return registry_.render(); }

  void connection_accepted() { connections_accepted_->add(); }
  void connection_refused() { connections_refused_->add(); }
  void login_failed(LoginFailure reason) {
    login_failures_[static_cast<std::size_t>(reason)]->add();
  }

  /// Switchover: one observation per finished step, one count per run.
  void switchover_step(const std::string& step, std::chrono::nanoseconds duration);
  void switchover_run(const std::string& outcome);  // committed, aborted or failed

  /// Replication poller results.
  struct ReplicationSample {
    std::string database;
    std::optional<std::int64_t> lag_bytes;
    std::optional<double> lag_seconds;
    std::optional<std::int64_t> retained_wal_bytes;
    bool retained_wal_alarm = false;  // above replication.retained_wal_alarm_bytes
  };
  /// Replaces the per-database replication gauges (an empty list removes them).
  void replication_polled(const std::vector<ReplicationSample>& samples);
  /// Records a poll attempt: its outcome, when it ended (Unix time) and how long it took.
  void replication_poll_result(bool ok, double unix_time, std::chrono::nanoseconds duration);

 private:
  class ErrorFamily;

  metrics::Registry registry_;
  mutable std::mutex databases_mutex_;
  std::map<std::string, std::unique_ptr<DatabaseStats>> databases_;

  metrics::Counter* connections_accepted_;
  metrics::Counter* connections_refused_;
  std::array<metrics::Counter*, kLoginFailureCount> login_failures_{};
  metrics::GaugeFamily* active_environment_;
  metrics::GaugeFamily* clients_;
  metrics::Gauge* clients_parked_;
  metrics::GaugeFamily* server_connections_;
  metrics::CounterFamily* queries_;
  metrics::CounterFamily* transactions_;
  metrics::CounterFamily* bytes_received_;
  metrics::CounterFamily* bytes_sent_;
  metrics::HistogramFamily* query_duration_;
  metrics::GaugeFamily* replication_lag_bytes_;
  metrics::GaugeFamily* replication_lag_seconds_;
  metrics::GaugeFamily* replication_retained_wal_;
  metrics::GaugeFamily* replication_retained_wal_alarm_;
  // Without label values: their one child appears with the first poll, so that a pgflip
  // that does not poll shows no misleading "poll_ok 0".
  metrics::GaugeFamily* replication_poll_ok_;
  metrics::GaugeFamily* replication_poll_timestamp_;
  metrics::HistogramFamily* replication_poll_duration_;
  metrics::GaugeFamily* certificate_expiry_;
  metrics::CounterFamily* switchover_runs_;
  metrics::HistogramFamily* switchover_steps_;
};

}  // namespace pgflip::proxy
