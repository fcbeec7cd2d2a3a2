// Fencing blue (read-only by default, non-superuser logins blocked, other backends terminated)
// and undoing it exactly, crash-safely.
#include <spdlog/spdlog.h>

#include "replication/detail.hpp"
#include "replication/manager.hpp"
#include "replication/sql.hpp"

namespace pgflip::replication {
namespace {

using detail::Clock;

/// Reloads the configuration and waits until this session has re-read it: the postmaster
/// re-reads the files before it signals the backends, so from then on every new session
/// (and every existing one at its next command) sees the new value.
void reload_and_wait(PgConnection& conn, Clock::time_point deadline, std::string_view step) {
  const std::string before = conn.exec("SELECT pg_conf_load_time()::text", step).text(0, 0);
  conn.run("SELECT pg_reload_conf()", step);
  const bool reloaded = detail::poll_until(deadline, std::chrono::milliseconds(2), [&] {
    return conn.exec("SELECT pg_conf_load_time() > $1::timestamptz", {before}, step).boolean(0, 0);
  });
  if (!reloaded) {
    throw ReplicationError(ErrorKind::kTimeout, conn.database(), std::string(step),
                           "blue did not reload its configuration in time");
  }
}

/// The last value of default_transaction_read_only in postgresql.auto.conf, if any.
std::optional<std::string> auto_conf_setting(PgConnection& conn, std::string_view step) {
  PgResult r = conn.exec(
      "SELECT setting FROM pg_file_settings WHERE name = 'default_transaction_read_only' "
      "AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1",
      step);
  if (r.rows() == 0) return std::nullopt;
  return r.opt_text(0, 0);
}

/// pgflip's fence record, if any. Read through to_jsonb so that a record written by a pgflip
/// that did not record connection limits yet (no such column) reads as "none recorded".
struct FenceRecord {
  std::string fenced_at;
  std::string label;
  std::optional<std::string> previous_setting;
  std::vector<FencedDatabase> databases;  // only those that still exist, by oid
  std::vector<std::string> logins;        // roles made NOLOGIN that still exist, by oid
};

std::optional<FenceRecord> read_record(PgConnection& blue, const std::string& table,
                                       std::string_view step) {
  PgResult r = blue.exec(
      "SELECT fenced_at::text, coalesce(label, ''), previous_setting FROM " + table, step);
  if (r.rows() == 0) return std::nullopt;
  FenceRecord record{r.text(0, 0), r.text(0, 1), r.opt_text(0, 2), {}, {}};
  const auto entries = [&](std::string_view key) {
    return " f, jsonb_array_elements(coalesce(to_jsonb(f) -> 'previous_access' -> '" +
           std::string(key) + "', '[]')) e ";
  };
  PgResult dbs = blue.exec("SELECT d.datname::text, d.oid::int8, (e ->> 'limit')::int FROM " +
                               table + entries("databases") +
                               "JOIN pg_database d ON d.oid = (e ->> 'oid')::oid ORDER BY 1",
                           step);
  for (int i = 0; i < dbs.rows(); ++i) {
    record.databases.push_back(
        {dbs.text(i, 0), dbs.int64(i, 1), static_cast<int>(dbs.int64(i, 2))});
  }
  PgResult roles = blue.exec("SELECT r.rolname::text FROM " + table + entries("logins") +
                                 "JOIN pg_roles r ON r.oid = (e ->> 'oid')::oid ORDER BY 1",
                             step);
  for (int i = 0; i < roles.rows(); ++i) record.logins.push_back(roles.text(i, 0));
  return record;
}

/// Blocks new logins of non-superusers: CONNECTION LIMIT 0 on every recorded database
/// (superusers are exempt, so pgflip's logins and superusers' walsenders and apply workers
/// still get in), NOLOGIN for the recorded REPLICATION roles (connection limits do not apply
/// to walsenders, and a logical one, replication=database, runs SQL).
void block_logins(PgConnection& blue, const FenceRecord& record, std::string_view step) {
  for (const auto& d : record.databases) {
    if (blue.exec("SELECT datconnlimit <> 0 FROM pg_database WHERE oid = $1::oid",
                  {std::to_string(d.oid)}, step)
            .boolean(0, 0)) {
      blue.run("ALTER DATABASE " + quote_ident(d.database) + " CONNECTION LIMIT 0", step);
    }
  }
  for (const auto& role : record.logins) {
    blue.run("ALTER ROLE " + quote_ident(role) + " NOLOGIN", step);
  }
}

/// Waits until every login that was past the connection-limit check when the limits changed
/// has finished starting (and so is in pg_stat_activity, where the termination finds it). A
/// starting backend holds RowExclusiveLock on its database from before that check until its
/// start-up transaction commits, after it has registered in pg_stat_activity
/// (postinit.c, InitPostgres); logins that take the lock later see CONNECTION LIMIT 0.
void wait_for_starting_logins(PgConnection& blue, Clock::time_point deadline,
                              std::string_view step) {
  constexpr std::string_view kStarting =
      "FROM pg_locks WHERE locktype = 'object' AND classid = 'pg_database'::regclass "
      "AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid()";
  const std::string pids =
      blue.exec("SELECT coalesce(array_agg(DISTINCT pid), '{}')::text " + std::string(kStarting),
                step)
          .text(0, 0);
  if (pids == "{}") return;
  const bool started = detail::poll_until(deadline, std::chrono::milliseconds(2), [&] {
    return blue.exec("SELECT count(*) " + std::string(kStarting) + " AND pid = ANY ($1::int[])",
                     {pids}, step)
               .int64(0, 0) == 0;
  });
  if (!started) {
    throw ReplicationError(ErrorKind::kTimeout, blue.database(), std::string(step),
                           "logins to blue still starting (pids " + pids + ") did not finish");
  }
}

std::string int_array(const std::vector<int>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += (i ? "," : "") + std::to_string(values[i]);
  }
  return out + "}";
}

}  // namespace

void Manager::ensure_fence_table(PgConnection& blue) {
  constexpr std::string_view kStep = "fence";
  const std::string table = quote_ident(names_.schema) + ".fence";
  if (blue.exec("SELECT to_regclass($1) IS NOT NULL", {table}, kStep).boolean(0, 0) &&
      blue.exec("SELECT NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass "
                "AND attname = 'previous_access' AND NOT attisdropped)",
                {table}, kStep)
          .boolean(0, 0) &&
      blue.exec("SELECT 1 FROM pg_publication WHERE pubname = $1", {names_.publication}, kStep)
              .rows() > 0) {
    // A fence table of an older pgflip that blue publishes: green gets the new column first,
    // or its apply would stop at the fence record (a column it does not have).
    PgConnection green = connect(Side::kGreen, blue.database(), kStep);
    green.run("ALTER TABLE IF EXISTS " + table + " ADD COLUMN IF NOT EXISTS previous_access jsonb",
              kStep);
  }
  blue.run(sql::create_fence_table(names_), kStep);
}

FenceResult Manager::fence(const FenceOptions& options) {
  PgConnection blue = connect_maintenance(Side::kBlue, "fence");
  return fence_over(blue, options);
}

FenceResult Manager::fence(const FenceOptions& options, SentinelWatch& watch) {
  // The watch's connections write the sentinels and read the sequences after the fence.
  FenceOptions with_watch = options;
  for (const auto& db : watch.databases_) with_watch.keep_pids.push_back(db.blue.backend_pid());
  return fence_over(watch.maintenance_, with_watch);
}

FenceResult Manager::fence_over(PgConnection& blue, const FenceOptions& options) {
  constexpr std::string_view kStep = "fence";
  const auto start = Clock::now();
  const auto deadline = start + options.timeout;
  FenceResult result;
  result.label = options.label;
  const std::string table = quote_ident(names_.schema) + ".fence";
  // Only a superuser login is exempt from CONNECTION LIMIT 0: any other would lock pgflip out
  // of blue, unfence included.
  if (!blue.exec("SELECT rolsuper FROM pg_roles WHERE rolname = session_user", kStep)
           .boolean(0, 0)) {
    throw ReplicationError(ErrorKind::kState, blue.database(), std::string(kStep),
                           "the fence needs a superuser login on blue (blue.admin_user): it "
                           "closes every database to other logins");
  }
  ensure_fence_table(blue);

  // The record goes first, in one statement: if we die after any later step, a restarted
  // pgflip still knows the fence is its own and what to restore. It lists every database
  // that allows connections with its limit, and every role that can log in with REPLICATION
  // but is no superuser (except the roles streaming pgflip's slots: green's subscriptions
  // must be able to reconnect). A second fence keeps the record and adds only what it lacks
  // (created since, or a record of an older pgflip); `recorded` is the existing list then.
  const auto current = [&](const std::string& recorded) {
    return "jsonb_build_object('databases', (SELECT coalesce(jsonb_agg(jsonb_build_object("
           "'oid', d.oid::int8, 'database', d.datname::text, 'limit', d.datconnlimit) ORDER BY "
           "d.datname), '[]') FROM pg_database d WHERE d.datallowconn AND d.oid NOT IN (SELECT "
           "(e ->> 'oid')::oid FROM jsonb_array_elements(coalesce(" +
           recorded +
           " -> 'databases', '[]')) e)), 'logins', (SELECT coalesce(jsonb_agg("
           "jsonb_build_object('oid', r.oid::int8, 'role', r.rolname::text) ORDER BY "
           "r.rolname), '[]') FROM pg_roles r WHERE r.rolreplication AND r.rolcanlogin AND NOT "
           "r.rolsuper AND r.oid NOT IN (SELECT a.usesysid FROM pg_stat_activity a JOIN "
           "pg_replication_slots s ON s.active_pid = a.pid WHERE s.slot_name LIKE $1 AND "
           "a.usesysid IS NOT NULL) AND r.oid NOT IN (SELECT (e ->> 'oid')::oid FROM "
           "jsonb_array_elements(coalesce(" +
           recorded + " -> 'logins', '[]')) e)))";
  };
  const std::string ours = sql::like_prefix(names_.subscription_prefix());
  if (auto record = read_record(blue, table, kStep)) {
    result.action = FenceAction::kAlreadyFenced;
    result.fenced_at = record->fenced_at;
    result.label = record->label;
    result.previous_setting = record->previous_setting;
    const std::string recorded = "f.previous_access";
    blue.run("UPDATE " + table +
                 " f SET previous_access = jsonb_build_object('databases', coalesce("
                 "f.previous_access -> 'databases', '[]') || (" +
                 current(recorded) +
                 " -> 'databases'), 'logins', coalesce(f.previous_access "
                 "-> 'logins', '[]') || (" +
                 current(recorded) + " -> 'logins'))",
             {ours}, kStep);
  } else {
    result.action = FenceAction::kFenced;
    result.previous_setting = auto_conf_setting(blue, kStep);
    result.fenced_at =
        blue.exec("INSERT INTO " + table +
                      " (label, previous_setting, previous_access) VALUES ($2, $3, " +
                      current("NULL::jsonb") + ") RETURNING fenced_at::text",
                  {ours, options.label, result.previous_setting}, kStep)
            .text(0, 0);
  }
  const FenceRecord record = read_record(blue, table, kStep).value();
  result.databases = record.databases;
  result.logins_disabled = record.logins;

  // Belt: every new transaction of every session is read-only unless it opts out (superusers
  // included, so an accidental superuser writer is stopped too).
  blue.run("ALTER SYSTEM SET default_transaction_read_only = on", kStep);
  reload_and_wait(blue, deadline, kStep);
  // Braces: non-superusers cannot log in any more, so they cannot opt out in a new session;
  // every database, so none can be a stepping stone (a database owner could otherwise log in
  // to template1 and lift the limit of its own database).
  block_logins(blue, record, kStep);
  wait_for_starting_logins(blue, deadline, kStep);

  if (options.terminate_backends) {
    const auto wait_ms = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    // Existing sessions could opt out of the read-only default and keep writing, and a
    // transaction opened before the reload is read-write until it ends: terminate every client
    // backend (superusers' too), and every other backend of a non-superuser role attached to a
    // database (logical walsenders can run SQL; background workers), except ours, the
    // caller's, and the walsenders streaming pgflip's slots (green's subscriptions, which the
    // drain needs). Backends without a role or database (autovacuum, checkpointer, physical
    // walsenders) cannot write user data. pg_terminate_backend(pid, timeout) waits until each
    // is gone.
    PgResult killed = blue.exec(
        "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.datname::text, ''), "
        "coalesce(a.application_name, ''), coalesce(a.backend_type, ''), "
        "pg_terminate_backend(a.pid, $3::int8) "
        "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid "
        "WHERE a.pid <> pg_backend_pid() AND NOT (a.pid = ANY ($2::int[])) "
        "AND (a.backend_type = 'client backend' OR (a.datid IS NOT NULL AND r.rolsuper IS FALSE "
        "AND a.pid NOT IN (SELECT active_pid FROM pg_replication_slots "
        "  WHERE active_pid IS NOT NULL AND slot_name LIKE $1))) "
        "ORDER BY a.pid",
        {sql::like_prefix(names_.subscription_prefix()), int_array(options.keep_pids),
         std::to_string(wait_ms)},
        kStep);
    for (int i = 0; i < killed.rows(); ++i) {
      result.terminated.push_back({static_cast<int>(killed.int64(i, 0)), killed.text(i, 1),
                                   killed.text(i, 2), killed.text(i, 3), killed.text(i, 4)});
    }
  }
  result.seconds = detail::seconds_since(start);
  spdlog::info(
      "replication fence: blue {} ({} databases closed to non-superuser logins, {} REPLICATION "
      "roles NOLOGIN, {} backends terminated, {:.3f} s)",
      to_string(result.action), result.databases.size(), result.logins_disabled.size(),
      result.terminated.size(), result.seconds);
  return result;
}

FenceResult Manager::unfence(std::chrono::milliseconds timeout) {
  constexpr std::string_view kStep = "unfence";
  const auto start = Clock::now();
  FenceResult result;
  result.action = FenceAction::kNotFenced;
  PgConnection blue = connect_maintenance(Side::kBlue, kStep);
  const std::string table = quote_ident(names_.schema) + ".fence";
  if (!blue.exec("SELECT to_regclass($1) IS NOT NULL", {table}, kStep).boolean(0, 0)) {
    result.seconds = detail::seconds_since(start);
    return result;
  }
  auto record = read_record(blue, table, kStep);
  if (!record) {
    result.seconds = detail::seconds_since(start);
    return result;
  }
  result.fenced_at = record->fenced_at;
  result.label = record->label;
  result.previous_setting = record->previous_setting;
  result.databases = record->databases;
  result.logins_disabled = record->logins;
  // Each step sets an absolute value, so repeating it after a crash is harmless.
  for (const auto& d : record->databases) {
    blue.run("ALTER DATABASE " + quote_ident(d.database) + " CONNECTION LIMIT " +
                 std::to_string(d.previous_limit),
             kStep);
  }
  for (const auto& role : record->logins)
    blue.run("ALTER ROLE " + quote_ident(role) + " LOGIN", kStep);
  if (result.previous_setting) {
    blue.run("ALTER SYSTEM SET default_transaction_read_only = " +
                 quote_literal(*result.previous_setting),
             kStep);
  } else {
    blue.run("ALTER SYSTEM RESET default_transaction_read_only", kStep);
  }
  reload_and_wait(blue, start + timeout, kStep);
  // Deleted last: a crash before this line leaves a record that the next unfence finishes.
  blue.run("DELETE FROM " + table, kStep);
  result.action = FenceAction::kUnfenced;
  result.seconds = detail::seconds_since(start);
  spdlog::info(
      "replication unfence: blue unfenced, {} connection limits and {} logins restored ({:.3f} s)",
      result.databases.size(), result.logins_disabled.size(), result.seconds);
  return result;
}

FenceState Manager::fence_state() const {
  constexpr std::string_view kStep = "fence_state";
  FenceState state;
  PgConnection blue = connect_maintenance(Side::kBlue, kStep);
  const std::string table = quote_ident(names_.schema) + ".fence";
  if (blue.exec("SELECT to_regclass($1) IS NOT NULL", {table}, kStep).boolean(0, 0)) {
    if (auto record = read_record(blue, table, kStep)) {
      state.recorded = true;
      state.fenced_at = record->fenced_at;
      state.label = record->label;
      state.previous_setting = record->previous_setting;
      state.databases = record->databases;
      state.logins_disabled = record->logins;
    }
  }
  // The value the configuration files give a new session (the last file entry wins).
  PgResult configured = blue.exec(
      "SELECT coalesce((SELECT setting FROM pg_file_settings "
      "  WHERE name = 'default_transaction_read_only' AND error IS NULL "
      "  ORDER BY seqno DESC LIMIT 1), boot_val) "
      "FROM pg_settings WHERE name = 'default_transaction_read_only'",
      kStep);
  state.default_transaction_read_only = configured.text(0, 0);
  return state;
}

}  // namespace pgflip::replication
