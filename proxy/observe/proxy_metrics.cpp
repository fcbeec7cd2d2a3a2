// pgflip's own metrics: the families, per-database counters, errors by SQLSTATE, and the
// scrape-time session gauges.
#include "proxy/observe/proxy_metrics.hpp"

#include <algorithm>
#include <ctime>

namespace pgflip::proxy {

namespace {

// A SQLSTATE is five characters of 0-9 and A-Z: 6 bits each, never 0 as a whole.
std::uint32_t pack_sqlstate(std::string_view code) {
  if (code.size() != 5) return 0;
  std::uint32_t packed = 0;
  for (char c : code) {
    std::uint32_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<std::uint32_t>(c - '0') + 1;
    } else if (c >= 'A' && c <= 'Z') {
      digit = static_cast<std::uint32_t>(c - 'A') + 11;
    } else {
      return 0;
    }
    packed = (packed << 6) | digit;
  }
  return packed;
}

std::string unpack_sqlstate(std::uint32_t packed) {
  std::string code(5, '?');
  for (int i = 4; i >= 0; --i) {
    const std::uint32_t digit = packed & 0x3f;
    packed >>= 6;
    code[static_cast<std::size_t>(i)] =
        digit <= 10 ? static_cast<char>('0' + digit - 1) : static_cast<char>('A' + digit - 11);
  }
  return code;
}

constexpr std::string_view kLoginFailureNames[kLoginFailureCount] = {"auth", "limit", "server",
                                                                     "timeout", "protocol"};
constexpr std::string_view kServerStates[] = {"login", "idle", "active", "idle_in_transaction",
                                              "prewarmed"};
constexpr std::string_view kEnvironments[] = {"blue", "green"};

}  // namespace

std::string_view to_string(ClientState state) {
  switch (state) {
    case ClientState::kLogin:
      return "login";
    case ClientState::kIdle:
      return "idle";
    case ClientState::kActive:
      return "active";
    case ClientState::kIdleInTransaction:
      return "idle_in_transaction";
    case ClientState::kParked:
      return "parked";
    case ClientState::kClosing:
      return "closing";
    case ClientState::kConsole:
      return "console";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Errors by SQLSTATE

void SqlstateCounts::add(std::string_view sqlstate) noexcept {
  const std::uint32_t code = pack_sqlstate(sqlstate);
  if (code != 0) {
    const std::size_t start = (code * 2654435761U) % kSlots;
    for (std::size_t i = 0; i < kSlots; ++i) {
      Slot& slot = slots_[(start + i) % kSlots];
      std::uint32_t seen = slot.code.load(std::memory_order_acquire);
      // A failed exchange leaves the code that won the slot in `seen`.
      if (seen == 0 && slot.code.compare_exchange_strong(seen, code, std::memory_order_acq_rel)) {
        seen = code;
      }
      if (seen == code) {
        slot.count.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
  }
  other_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::pair<std::string, std::uint64_t>> SqlstateCounts::snapshot() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (const Slot& slot : slots_) {
    const std::uint32_t code = slot.code.load(std::memory_order_acquire);
    const std::uint64_t count = slot.count.load(std::memory_order_relaxed);
    if (code != 0 && count > 0) out.emplace_back(unpack_sqlstate(code), count);
  }
  std::sort(out.begin(), out.end());
  if (const auto other = other_.load(std::memory_order_relaxed); other > 0) {
    out.emplace_back("other", other);
  }
  return out;
}

std::uint64_t SqlstateCounts::total() const {
  std::uint64_t total = other_.load(std::memory_order_relaxed);
  for (const Slot& slot : slots_) total += slot.count.load(std::memory_order_relaxed);
  return total;
}

/// pgflip_errors_total{database, sqlstate}, read from every database's table.
class ProxyMetrics::ErrorFamily final : public metrics::FamilyBase {
 public:
  explicit ErrorFamily(const ProxyMetrics& owner)
      : FamilyBase("pgflip_errors_total",
                   "ErrorResponses sent to logged-in clients (relayed from the server or "
                   "pgflip's own), by database and SQLSTATE",
                   {"database", "sqlstate"}),
        owner_(owner) {}

  void render(std::string& out) const override {
    render_header(out, "counter");
    for (const DatabaseStats* stats : owner_.databases()) {
      for (const auto& [code, count] : stats->errors.snapshot()) {
        out += name_;
        render_labels(out, {stats->name, code});
        out += ' ';
        out += std::to_string(count);
        out += '\n';
      }
    }
  }

 private:
  const ProxyMetrics& owner_;
};

// ---------------------------------------------------------------------------
// The families

ProxyMetrics::ProxyMetrics() {
  using metrics::Counter;
  using metrics::Gauge;
  using metrics::Histogram;
  auto& build =
      registry_.add<Gauge>("pgflip_build_info", "pgflip's version (always 1)", {"version"});
  build.with({PGFLIP_VERSION}).set(1);
  active_environment_ =
      &registry_.add<Gauge>("pgflip_active_environment",
                            "1 for the environment new server connections go to", {"environment"});

  connections_accepted_ =
      &registry_.add<Counter>("pgflip_client_connections_total", "Client connections accepted", {})
           .with({});
  connections_refused_ =
      &registry_
           .add<Counter>("pgflip_client_connections_refused_total",
                         "Client connections refused at once: server.max_client_conn reached", {})
           .with({});
  auto& failures = registry_.add<Counter>(
      "pgflip_client_login_failures_total",
      "Client connections that did not become a session (cancel requests and connections "
      "closed before sending anything are not counted), by reason",
      {"reason"});
  for (std::size_t i = 0; i < kLoginFailureCount; ++i) {
    login_failures_[i] = &failures.with({std::string(kLoginFailureNames[i])});
  }

  clients_ = &registry_.add<Gauge>("pgflip_clients", "Client connections by state", {"state"});
  for (std::size_t i = 0; i < kClientStateCount; ++i) {
    clients_->with({std::string(to_string(static_cast<ClientState>(i)))});
  }
  clients_parked_ =
      &registry_
           .add<Gauge>("pgflip_clients_parked", "Clients whose next request a switchover holds", {})
           .with({});
  server_connections_ = &registry_.add<Gauge>(
      "pgflip_server_connections",
      "Server connections by environment and state (prewarmed: opened by a switchover, not "
      "in use yet)",
      {"environment", "state"});
  for (auto environment : kEnvironments) {
    for (auto state : kServerStates) {
      server_connections_->with({std::string(environment), std::string(state)});
    }
  }

  queries_ = &registry_.add<Counter>(
      "pgflip_queries_total",
      "Query cycles answered: ReadyForQuery messages relayed to clients (one per simple Query, "
      "extended-protocol Sync or FunctionCall)",
      {"database"});
  transactions_ = &registry_.add<Counter>(
      "pgflip_transactions_total",
      "Transactions ended: ReadyForQuery with status idle relayed to clients (an autocommit "
      "statement or the end of a transaction block)",
      {"database"});
  query_duration_ = &registry_.add<Histogram>(
      "pgflip_query_duration_seconds",
      "From the first client message of a query cycle to its ReadyForQuery", {"database"},
      std::span<const double>(metrics::kLatencyBuckets));
  bytes_received_ = &registry_.add<Counter>("pgflip_client_bytes_received_total",
                                            "Bytes relayed from clients to servers", {"database"});
  bytes_sent_ = &registry_.add<Counter>("pgflip_client_bytes_sent_total",
                                        "Bytes relayed from servers to clients", {"database"});
  registry_.add_family(std::make_unique<ErrorFamily>(*this));

  replication_lag_bytes_ = &registry_.add<Gauge>(
      "pgflip_replication_lag_bytes",
      "WAL bytes green has not confirmed yet (blue's current LSN - slot confirmed_flush_lsn), "
      "from the last poll",
      {"database"});
  replication_lag_seconds_ = &registry_.add<Gauge>(
      "pgflip_replication_lag_seconds",
      "Age of the oldest heartbeat green has not applied yet, from the last poll", {"database"});
  replication_retained_wal_ = &registry_.add<Gauge>(
      "pgflip_replication_retained_wal_bytes",
      "WAL bytes blue keeps for the slot (current LSN - restart_lsn), from the last poll",
      {"database"});
  replication_retained_wal_alarm_ = &registry_.add<Gauge>(
      "pgflip_replication_retained_wal_alarm",
      "1 when blue keeps more WAL for the slot than replication.retained_wal_alarm_bytes (its "
      "disk fills while green does not confirm), 0 otherwise, from the last poll",
      {"database"});
  replication_poll_ok_ = &registry_.add<Gauge>(
      "pgflip_replication_poll_ok",
      "1 when the last replication status poll succeeded, 0 when it failed", {});
  replication_poll_timestamp_ =
      &registry_.add<Gauge>("pgflip_replication_last_poll_timestamp_seconds",
                            "Unix time of the last replication status poll", {});
  replication_poll_duration_ = &registry_.add<Histogram>(
      "pgflip_replication_poll_duration_seconds", "How long replication status polls take", {},
      std::span<const double>(metrics::kStepBuckets));

  certificate_expiry_ = &registry_.add<Gauge>(
      "pgflip_tls_certificate_expiry_timestamp_seconds",
      "Unix time at which a certificate pgflip presents expires (notAfter): tls.cert_file to "
      "clients, blue.sslcert and green.sslcert to the servers; renewed files count after a "
      "reload",
      {"certificate"});

  switchover_runs_ = &registry_.add<Counter>(
      "pgflip_switchover_runs_total",
      "Switchovers by outcome: committed, aborted (by the operator), failed (rolled back)",
      {"outcome"});
  for (const char* outcome : {"committed", "aborted", "failed"}) switchover_runs_->with({outcome});
  switchover_steps_ = &registry_.add<Histogram>(
      "pgflip_switchover_step_duration_seconds", "Duration of each finished switchover step",
      {"step"}, std::span<const double>(metrics::kStepBuckets));
}

DatabaseStats& ProxyMetrics::database(const std::string& database) {
  std::lock_guard lock(databases_mutex_);
  auto& slot = databases_[database];
  if (!slot) {
    slot = std::make_unique<DatabaseStats>();
    slot->name = database;
    slot->queries = &queries_->with({database});
    slot->transactions = &transactions_->with({database});
    slot->bytes_received = &bytes_received_->with({database});
    slot->bytes_sent = &bytes_sent_->with({database});
    slot->query_duration = &query_duration_->with({database});
  }
  return *slot;
}

std::vector<const DatabaseStats*> ProxyMetrics::databases() const {
  std::lock_guard lock(databases_mutex_);
  std::vector<const DatabaseStats*> out;
  out.reserve(databases_.size());
  for (const auto& [name, stats] : databases_) out.push_back(stats.get());
  return out;
}

void ProxyMetrics::watch_sessions(SessionVisitor sessions,
                                  std::function<std::string()> active_environment) {
  registry_.add_collector([this, sessions = std::move(sessions),
                           active_environment = std::move(active_environment)] {
    std::array<double, kClientStateCount> clients{};
    double parked = 0;
    // [environment][server state], in the order of kEnvironments and kServerStates.
    double servers[2][std::size(kServerStates)] = {};
    sessions([&](const SessionView& view) {
      ++clients[static_cast<std::size_t>(view.client)];
      if (view.client == ClientState::kParked) ++parked;
      if (view.prewarmed) ++servers[1][4];
      if (!view.has_server) return;
      const std::size_t environment = view.green ? 1 : 0;
      switch (view.client) {
        case ClientState::kLogin:
          if (view.server_login) ++servers[environment][0];
          break;
        case ClientState::kIdle:
        case ClientState::kParked:
          ++servers[environment][1];
          break;
        case ClientState::kActive:
          ++servers[environment][2];
          break;
        case ClientState::kIdleInTransaction:
          ++servers[environment][3];
          break;
        case ClientState::kClosing:
        case ClientState::kConsole:
          break;
      }
    });
    for (std::size_t i = 0; i < kClientStateCount; ++i) {
      clients_->with({std::string(to_string(static_cast<ClientState>(i)))}).set(clients[i]);
    }
    clients_parked_->set(parked);
    for (std::size_t e = 0; e < 2; ++e) {
      for (std::size_t s = 0; s < std::size(kServerStates); ++s) {
        server_connections_->with({std::string(kEnvironments[e]), std::string(kServerStates[s])})
            .set(servers[e][s]);
      }
    }
    const std::string active = active_environment();
    for (auto environment : kEnvironments) {
      active_environment_->with({std::string(environment)}).set(environment == active ? 1 : 0);
    }
  });
}

void ProxyMetrics::watch_certificates(CertificateExpiries certificates) {
  registry_.add_collector([this, certificates = std::move(certificates)] {
    std::vector<std::pair<metrics::Labels, double>> expiries;
    for (auto& [label, at] : certificates()) expiries.push_back({{std::move(label)}, at});
    certificate_expiry_->replace(expiries);
  });
}

void ProxyMetrics::switchover_step(const std::string& step, std::chrono::nanoseconds duration) {
  switchover_steps_->with({step}).observe(duration);
}

void ProxyMetrics::switchover_run(const std::string& outcome) {
  switchover_runs_->with({outcome}).add();
}

void ProxyMetrics::replication_polled(const std::vector<ReplicationSample>& samples) {
  std::vector<std::pair<metrics::Labels, double>> lag_bytes, lag_seconds, retained, alarm;
  for (const auto& sample : samples) {
    alarm.push_back({{sample.database}, sample.retained_wal_alarm ? 1.0 : 0.0});
    if (sample.lag_bytes) {
      lag_bytes.push_back({{sample.database}, static_cast<double>(*sample.lag_bytes)});
    }
    if (sample.lag_seconds) lag_seconds.push_back({{sample.database}, *sample.lag_seconds});
    if (sample.retained_wal_bytes) {
      retained.push_back({{sample.database}, static_cast<double>(*sample.retained_wal_bytes)});
    }
  }
  replication_lag_bytes_->replace(lag_bytes);
  replication_lag_seconds_->replace(lag_seconds);
  replication_retained_wal_->replace(retained);
  replication_retained_wal_alarm_->replace(alarm);
}

void ProxyMetrics::replication_poll_result(bool ok, double unix_time,
                                           std::chrono::nanoseconds duration) {
  replication_poll_ok_->with({}).set(ok ? 1 : 0);
  replication_poll_timestamp_->with({}).set(unix_time);
  replication_poll_duration_->with({}).observe(duration);
}

}  // namespace pgflip::proxy
