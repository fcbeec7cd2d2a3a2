// The replication manager: precheck, init, status, fence, sentinel, sequences, cleanup (libpq).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replication/error.hpp"
#include "replication/names.hpp"
#include "replication/pg.hpp"
#include "replication/reports.hpp"
#include "replication/settings.hpp"

namespace pgflip::replication {

struct PrecheckOptions {
  /// init will copy the schema: tables, extensions missing on an empty green database are
  /// expected, not failures.
  bool schema_copy_planned = false;
  /// init will copy the roles: roles missing on green are expected.
  bool role_copy_planned = false;
};

using ProgressCallback = std::function<void(const InitProgress&)>;

struct InitOptions {
  bool copy_schema = false;  // pg_dump --schema-only from blue | psql into green
  bool copy_roles = false;   // pg_dumpall --roles-only, filtered, into green (password secrets)
  /// pg_dump --no-owner --no-privileges (when green's roles differ on purpose).
  bool schema_no_owner = false;
  /// Run precheck first and refuse (ReplicationError, step "precheck") on any FAIL.
  bool require_clean_precheck = true;
  /// Wait until every table is ready; false returns right after CREATE SUBSCRIPTION.
  bool wait_for_sync = true;
  std::chrono::milliseconds sync_timeout{30 * 60'000};
  std::chrono::milliseconds progress_interval{500};
  /// Stop waiting (ReplicationError) when green counts a new apply or sync error; the cause
  /// is in green's server log. false keeps waiting until sync_timeout.
  bool fail_on_sync_error = true;
  ProgressCallback on_progress;
};

struct StatusOptions {
  bool write_heartbeat = true;  // write a heartbeat first, so lag_seconds is fresh
  int ddl_entries = 10;         // newest DDL log entries listed per database
};

struct FenceOptions {
  /// Terminate, on blue, every client backend (superusers' too: it ends the transactions in
  /// flight) and every other backend of a non-superuser role that is attached to a database
  /// (logical walsenders, which can run SQL, and background workers), except: the fence's
  /// own connection, the SentinelWatch's connections, `keep_pids`, and the walsenders that
  /// stream pgflip's slots. Kept by pid, never by application_name. Without it, sessions
  /// opened before the fence keep running and can opt out of the read-only default.
  bool terminate_backends = true;
  std::vector<int> keep_pids;  // further backends to keep (e.g. the proxy's parked sessions)
  std::string label;           // stored in the fence record (e.g. the switchover id)
  std::chrono::milliseconds timeout{10'000};
};

struct CleanupOptions {
  /// How long to wait for a walsender to release a slot before terminating it.
  std::chrono::milliseconds slot_release_timeout{10'000};
};

/// Sentinels written on blue and awaited on green over connections that stay open for the
/// watch's lifetime (one blue and one green connection per replicated database, and one to
/// blue's maintenance database), so that a switchover can measure green's apply lag before it
/// parks clients, then fence, drain and copy sequences while they are parked, without paying
/// for new logins. Made by Manager::watch_sentinels().
class SentinelWatch {
 public:
  using Clock = std::chrono::steady_clock;

  /// Inserts a sentinel row labelled `label` in every database on blue (autocommit: it is
  /// committed when this returns). The previous sentinel is forgotten.
  void write(std::string_view label);
  /// Polls green every `poll_interval` until each database shows the last sentinel, or
  /// `until` passes. True when every database shows it.
  [[nodiscard]] bool wait_until(Clock::time_point until, std::chrono::milliseconds poll_interval);
  /// The databases that do not show the last sentinel yet, comma-separated.
  [[nodiscard]] std::string missing() const;
  /// The last sentinel: per database its id and the seconds from its commit on blue to
  /// green showing it; `seconds` is the slowest database's.
  [[nodiscard]] SentinelResult result() const;

 private:
  friend class Manager;
  struct Database {
    std::string name;
    PgConnection blue;
    PgConnection green;
    std::int64_t id = 0;
    Clock::time_point written;
    std::optional<double> seen_after;
  };
  SentinelWatch(std::string table, PgConnection maintenance)
      : table_(std::move(table)), maintenance_(std::move(maintenance)) {}

  std::string table_;         // quoted schema.heartbeat
  PgConnection maintenance_;  // blue's maintenance database
  std::string label_;
  std::vector<Database> databases_;
};

/// One manager per pair of environments. Every call opens its own connections and closes
/// them before returning; calls are synchronous and bounded by statement_timeout, the
/// connect timeout and their own deadlines. Not thread-safe: call from one thread at a time.
class Manager {
 public:
  enum class Side { kBlue, kGreen };

  /// Throws ReplicationError(kState) on an invalid name prefix or an empty application_name.
  explicit Manager(Settings settings);

  [[nodiscard]] const Settings& settings() const noexcept { return settings_; }
  [[nodiscard]] const ObjectNames& names() const noexcept { return names_; }

  /// The configured databases, or every non-template database on blue that allows
  /// connections, in name order.
  [[nodiscard]] std::vector<std::string> databases() const;

  /// PASS/WARN/FAIL rows for the cluster and each database; changes nothing.
  [[nodiscard]] PrecheckReport precheck(const PrecheckOptions& options = {}) const;

  /// Roles, schema, pgflip objects, publication, DDL trigger, subscription; waits for the
  /// initial copy. Idempotent: re-running after a failure or a crash resumes.
  [[nodiscard]] InitReport init(const InitOptions& options = {});

  /// Lag, slot, table states, DDL since init, errors, alarms; writes a heartbeat first.
  [[nodiscard]] StatusReport status(const StatusOptions& options = {});

  /// Marks DDL as handled once it has been applied on green: deletes the DDL log rows with
  /// id <= `up_to_id` (every row when unset) in every database on blue; returns how many.
  [[nodiscard]] std::int64_t acknowledge_ddl(std::optional<std::int64_t> up_to_id = std::nullopt);

  /// Writes one heartbeat row per database on blue (and prunes rows older than 10 minutes).
  [[nodiscard]] HeartbeatResult heartbeat();

  /// Fences blue: records the fence (the read-only setting and every database's connection
  /// limit as they were), ALTER SYSTEM SET default_transaction_read_only = on, reload (waits
  /// until applied), CONNECTION LIMIT 0 on every database that allows connections and NOLOGIN
  /// for non-superuser REPLICATION roles (no new non-superuser login, walsenders included),
  /// waits for logins already past those checks, then terminates the other backends
  /// (FenceOptions::terminate_backends). Needs a superuser login. Idempotent.
  [[nodiscard]] FenceResult fence(const FenceOptions& options = {});
  /// The same over the watch's connection to blue (a switchover's: no login while parked).
  [[nodiscard]] FenceResult fence(const FenceOptions& options, SentinelWatch& watch);
  /// Restores the connection limits and the setting the fence replaced, then removes the
  /// record. A no-op (kNotFenced) without pgflip's record, so it is idempotent and safe after a
  /// restart, whichever step a killed fence or unfence reached.
  [[nodiscard]] FenceResult unfence(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  [[nodiscard]] FenceState fence_state() const;

  /// The server's pg_control_system().system_identifier (decimal digits): what tells one
  /// cluster from another whatever its address (a copy made by pg_basebackup keeps it; initdb
  /// makes a new one). pg_control_system() is executable by every role. Throws
  /// ReplicationError when the server cannot be reached.
  [[nodiscard]] std::string system_identifier(Side side) const;

  /// Writes a sentinel row labelled `label` into every database on blue, then polls green
  /// every `poll_interval` until each one shows it. Throws ReplicationError(kTimeout).
  [[nodiscard]] SentinelResult write_sentinel_and_wait(
      std::string_view label, std::chrono::milliseconds timeout,
      std::chrono::milliseconds poll_interval = std::chrono::milliseconds(5));
  /// Opens a blue and a green connection per database for repeated sentinels.
  [[nodiscard]] SentinelWatch watch_sentinels();

  /// Reads every sequence of every database on blue (from the sequence relations: exact
  /// last_value and is_called) and sets them on green in one statement per database.
  [[nodiscard]] SequenceCopyResult copy_sequences();
  /// The same over the watch's connections, for the databases it watches.
  [[nodiscard]] SequenceCopyResult copy_sequences(SentinelWatch& watch);

  /// Drops subscriptions (green), slots, event triggers, publications (blue) and pgflip's
  /// tables and schema (both) for every database of databases() plus any database where
  /// an object with pgflip's names is found. Keeps the fence record while blue is fenced.
  /// Idempotent; works after a crash at any point of init.
  [[nodiscard]] CleanupReport cleanup(const CleanupOptions& options = {});

 private:
  struct DatabaseInfo {
    std::string name;
    std::uint32_t blue_oid = 0;
    std::string subscription;  // == slot name
  };

  [[nodiscard]] PgConnection connect(Side side, const std::string& database,
                                     std::string_view step) const;
  [[nodiscard]] PgConnection connect_maintenance(Side side, std::string_view step) const;
  [[nodiscard]] std::vector<DatabaseInfo> database_infos(PgConnection& blue_maintenance) const;
  [[nodiscard]] FenceResult fence_over(PgConnection& blue, const FenceOptions& options);
  void ensure_fence_table(PgConnection& blue);
  [[nodiscard]] bool green_database_exists(PgConnection& green_maintenance,
                                           const std::string& database) const;
  [[nodiscard]] std::string blue_conninfo_for_green(const std::string& database) const;

  void copy_roles(InitReport& report);
  void init_database(const DatabaseInfo& db, const InitOptions& options, InitReport& report);
  void copy_schema(const DatabaseInfo& db, const InitOptions& options, InitReport& report);
  void wait_for_sync(const std::vector<DatabaseInfo>& dbs, const InitOptions& options,
                     InitReport& report);
  [[nodiscard]] DatabaseStatus database_status(const DatabaseInfo& db,
                                               const StatusOptions& options);
  void cleanup_database(const std::string& database, const std::vector<std::string>& slots,
                        const CleanupOptions& options, CleanupReport& report);

  Settings settings_;
  ObjectNames names_;
  ConnectOptions connect_options_;
};

}  // namespace pgflip::replication
