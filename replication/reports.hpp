// Structured results of the replication manager, each rendered as JSON and as a text table.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgflip::replication {

/// "12.3 MB": bytes in binary units with one decimal.
[[nodiscard]] std::string format_bytes(std::int64_t bytes);
/// A text table: headers, rows of cells (a cell may hold several lines), columns aligned.
[[nodiscard]] std::string render_table(const std::vector<std::string>& headers,
                                       const std::vector<std::vector<std::string>>& rows);

// ---- precheck ---------------------------------------------------------------------------

enum class CheckLevel { kPass, kWarn, kFail };
[[nodiscard]] std::string_view to_string(CheckLevel level);

struct PrecheckRow {
  std::string database;  // "" for cluster-wide checks (shown as "(cluster)")
  std::string check;     // e.g. "wal_level", "replica_identity", "large_objects"
  CheckLevel level = CheckLevel::kPass;
  std::string object;  // e.g. "blue", "public.orders", "role app"
  std::string detail;  // what was found and its consequence
  std::string fix;     // the exact statement or action that fixes a FAIL (or a WARN)
};

struct PrecheckReport {
  std::vector<std::string> databases;
  std::vector<PrecheckRow> rows;

  [[nodiscard]] std::size_t count(CheckLevel level) const;
  [[nodiscard]] bool has_failures() const { return count(CheckLevel::kFail) > 0; }
  /// Rows of one check (and database, unless empty), for callers and tests.
  [[nodiscard]] std::vector<PrecheckRow> find(std::string_view check,
                                              std::string_view database = {}) const;
  [[nodiscard]] boost::json::value to_json() const;
  [[nodiscard]] std::string to_table() const;
};

// ---- init -------------------------------------------------------------------------------

struct DatabaseProgress {
  std::string database;
  int tables_total = 0;
  int tables_done = 0;            // in state 'r' (ready) or 's' (sync done)
  std::int64_t bytes_copied = 0;  // heap size on green of the subscribed tables
  std::int64_t bytes_total = 0;   // heap size on blue of the published tables
};

/// Progress of the initial copy. Bytes are table heap sizes (pg_table_size, without indexes):
/// on green, which grow while COPY writes, out of blue's; so bytes_copied approaches
/// bytes_total and may differ from it by bloat.
struct InitProgress {
  std::vector<DatabaseProgress> databases;
  int tables_total = 0;
  int tables_done = 0;
  std::int64_t bytes_copied = 0;
  std::int64_t bytes_total = 0;
  double elapsed_seconds = 0;

  [[nodiscard]] boost::json::value to_json() const;
  /// One line: "tables 3/4, 120.0 MB of 130.2 MB, 4.2 s".
  [[nodiscard]] std::string to_line() const;
};

struct InitStep {
  std::string database;  // "" for cluster-wide steps (roles)
  std::string step;      // e.g. "schema_copy", "publication", "subscription"
  std::string outcome;   // "done", "exists", "skipped: <why>"
  double seconds = 0;
};

struct InitDatabaseResult {
  std::string database;
  std::string publication;
  std::string subscription;  // also the slot name on blue
  int tables = 0;
  std::int64_t bytes = 0;
  double copy_seconds = 0;  // from CREATE SUBSCRIPTION to every table ready
  bool synced = false;
};

struct InitReport {
  std::vector<std::string> roles_created;
  std::vector<std::string> roles_skipped;
  std::vector<InitStep> steps;
  std::vector<InitDatabaseResult> databases;
  bool synced = false;  // every table of every database is ready
  double seconds = 0;

  [[nodiscard]] boost::json::value to_json() const;
  [[nodiscard]] std::string to_table() const;
};

// ---- status -----------------------------------------------------------------------------

struct DdlEntry {
  std::int64_t id = 0;
  std::string logged_at;
  std::string event;  // ddl_command_end or sql_drop
  std::string command_tag;
  std::string object_type;
  std::string object_identity;
  std::string role;
  std::string query;
};

struct DatabaseStatus {
  std::string database;
  /// absent (nothing set up), incomplete (some objects missing), copying, streaming,
  /// stopped (subscription disabled or its worker not running), green_unreachable.
  std::string state;
  bool green_reachable = true;
  std::string subscription;
  bool publication_exists = false;
  bool subscription_exists = false;
  bool subscription_enabled = false;
  bool apply_worker_running = false;
  int sync_workers = 0;
  bool slot_exists = false;
  bool slot_active = false;
  std::string wal_status;                 // of the slot: reserved, extended, unreserved, lost
  std::optional<std::int64_t> lag_bytes;  // blue current LSN - slot confirmed_flush
  std::optional<std::int64_t> retained_wal_bytes;  // blue current LSN - slot restart_lsn
  bool retained_wal_alarm = false;    // retained_wal_bytes above retained_wal_alarm_bytes
  std::optional<double> lag_seconds;  // age of the oldest heartbeat not yet applied on green
  std::optional<std::int64_t> last_heartbeat_applied;  // id, on green
  std::map<std::string, int> table_states;             // srsubstate -> count (i, d, f, s, r)
  int tables_total = 0;
  int tables_ready = 0;
  std::vector<std::string> tables_not_ready;  // "public.t (d)"
  std::int64_t ddl_count = 0;
  std::vector<DdlEntry> recent_ddl;  // newest first
  std::int64_t apply_error_count = 0;
  std::int64_t sync_error_count = 0;
  std::vector<std::string> alarms;
};

struct StatusReport {
  std::vector<DatabaseStatus> databases;
  std::int64_t retained_wal_alarm_bytes = 0;

  [[nodiscard]] bool has_alarms() const;
  [[nodiscard]] boost::json::value to_json() const;
  [[nodiscard]] std::string to_table() const;
};

// ---- switchover building blocks ---------------------------------------------------------

struct TerminatedBackend {
  int pid = 0;
  std::string user;
  std::string database;
  std::string application_name;
  std::string backend_type;  // pg_stat_activity.backend_type: client backend, walsender, ...
};

/// A database whose new non-superuser logins the fence blocks (CONNECTION LIMIT 0).
struct FencedDatabase {
  std::string database;
  std::int64_t oid = 0;
  int previous_limit = -1;  // datconnlimit before the fence (-1 = no limit)
};

enum class FenceAction {
  kFenced,         // fence(): pgflip set default_transaction_read_only on blue
  kAlreadyFenced,  // fence(): pgflip's record was there already; setting re-asserted
  kUnfenced,       // unfence(): the previous setting is back
  kNotFenced,      // unfence(): no pgflip fence record; nothing changed
};
[[nodiscard]] std::string_view to_string(FenceAction action);

struct FenceResult {
  FenceAction action = FenceAction::kNotFenced;
  std::string fenced_at;  // when pgflip's fence record was written
  std::string label;
  /// The ALTER SYSTEM value of default_transaction_read_only before the fence; unset when
  /// postgresql.auto.conf had none (unfence then RESETs it).
  std::optional<std::string> previous_setting;
  /// From the fence record: every database that allowed connections when blue was fenced,
  /// with the connection limit unfence puts back.
  std::vector<FencedDatabase> databases;
  /// From the fence record: the non-superuser REPLICATION roles made NOLOGIN (their logical
  /// walsender logins pass connection limits), which unfence makes LOGIN again.
  std::vector<std::string> logins_disabled;
  std::vector<TerminatedBackend> terminated;
  double seconds = 0;

  [[nodiscard]] boost::json::value to_json() const;
  [[nodiscard]] std::string to_table() const;
};

/// What blue's fence record and configuration say right now.
struct FenceState {
  bool recorded = false;  // pgflip's fence record exists
  std::string fenced_at;
  std::string label;
  std::optional<std::string> previous_setting;
  std::vector<FencedDatabase> databases;      // from the record, as in FenceResult
  std::vector<std::string> logins_disabled;   // from the record, as in FenceResult
  std::string default_transaction_read_only;  // the value a new session would get

  [[nodiscard]] boost::json::value to_json() const;
};

struct SentinelDatabase {
  std::string database;
  std::int64_t id = 0;      // heartbeat row id of the sentinel
  double wait_seconds = 0;  // from the commit on blue to seeing the row on green
};

struct SentinelResult {
  std::string label;
  std::vector<SentinelDatabase> databases;
  double seconds = 0;

  [[nodiscard]] boost::json::value to_json() const;
  [[nodiscard]] std::string to_table() const;
};

struct SequenceValue {
  std::string database;
  std::string schema;
  std::string name;
  std::string ownership;  // owned (by a column), identity, unowned
  std::int64_t last_value = 0;
  bool is_called = false;
};

struct SequenceCopyResult {
  std::vector<SequenceValue> sequences;
  double read_seconds = 0;   // reading on blue, every database
  double write_seconds = 0;  // setting on green, every database (one statement each)
  double seconds = 0;

  [[nodiscard]] std::size_t count() const { return sequences.size(); }
  [[nodiscard]] boost::json::value to_json() const;
  [[nodiscard]] std::string to_table() const;
};

struct HeartbeatResult {
  std::map<std::string, std::int64_t> ids;  // database -> heartbeat row id written on blue

  [[nodiscard]] boost::json::value to_json() const;
};

// ---- cleanup ----------------------------------------------------------------------------

struct CleanupAction {
  std::string side;  // blue or green
  std::string database;
  std::string object;  // e.g. "subscription pgflip_app_16384"
  std::string action;  // dropped, kept: <why>, failed: <why>
};

struct CleanupReport {
  std::vector<CleanupAction> actions;
  double seconds = 0;

  [[nodiscard]] std::size_t dropped() const;
  [[nodiscard]] boost::json::value to_json() const;
  [[nodiscard]] std::string to_table() const;
};

}  // namespace pgflip::replication
