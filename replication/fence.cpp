// Fencing blue (read-only by default, other clients terminated) and undoing it, crash-safely.
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

}  // namespace

FenceResult Manager::fence(const FenceOptions& options) {
  PgConnection blue = connect_maintenance(Side::kBlue, "fence");
  return fence_over(blue, options);
}

FenceResult Manager::fence(const FenceOptions& options, SentinelWatch& watch) {
  return fence_over(watch.maintenance_, options);
}

FenceResult Manager::fence_over(PgConnection& blue, const FenceOptions& options) {
  constexpr std::string_view kStep = "fence";
  const auto start = Clock::now();
  const auto deadline = start + options.timeout;
  FenceResult result;
  result.label = options.label;
  const std::string table = quote_ident(names_.schema) + ".fence";
  blue.run(sql::create_fence_table(names_), kStep);

  // The record goes first: if we die after the ALTER SYSTEM, a restarted pgflip still knows
  // the fence is its own and what to restore.
  PgResult record = blue.exec(
      "SELECT fenced_at::text, coalesce(label, ''), previous_setting FROM " + table, kStep);
  if (record.rows() > 0) {
    result.action = FenceAction::kAlreadyFenced;
    result.fenced_at = record.text(0, 0);
    result.label = record.text(0, 1);
    result.previous_setting = record.opt_text(0, 2);
  } else {
    result.action = FenceAction::kFenced;
    result.previous_setting = auto_conf_setting(blue, kStep);
    result.fenced_at =
        blue.exec("INSERT INTO " + table +
                      " (label, previous_setting) VALUES ($1, $2) RETURNING fenced_at::text",
                  {options.label, result.previous_setting}, kStep)
            .text(0, 0);
  }
  blue.run("ALTER SYSTEM SET default_transaction_read_only = on", kStep);
  reload_and_wait(blue, deadline, kStep);

  if (options.terminate_backends) {
    std::string keep = "{";
    for (std::size_t i = 0; i < options.keep_pids.size(); ++i) {
      keep += (i ? "," : "") + std::to_string(options.keep_pids[i]);
    }
    keep += "}";
    const auto wait_ms = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    // Sessions that set default_transaction_read_only themselves would keep writing:
    // terminate every client backend except ours, walsenders (not client backends) and the
    // pids the caller keeps. pg_terminate_backend(pid, timeout) waits until each is gone.
    PgResult killed = blue.exec(
        "SELECT pid, coalesce(usename::text, ''), coalesce(datname::text, ''), "
        "coalesce(application_name, ''), pg_terminate_backend(pid, $3::int8) "
        "FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND pid <> pg_backend_pid() AND coalesce(application_name, '') NOT LIKE $1 "
        "AND NOT (pid = ANY ($2::int[]))",
        {sql::like_prefix(settings_.application_name), keep, std::to_string(wait_ms)}, kStep);
    for (int i = 0; i < killed.rows(); ++i) {
      result.terminated.push_back({static_cast<int>(killed.int64(i, 0)), killed.text(i, 1),
                                   killed.text(i, 2), killed.text(i, 3)});
    }
  }
  result.seconds = detail::seconds_since(start);
  spdlog::info("replication fence: blue {} ({} backends terminated, {:.3f} s)",
               to_string(result.action), result.terminated.size(), result.seconds);
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
  PgResult record = blue.exec(
      "SELECT fenced_at::text, coalesce(label, ''), previous_setting FROM " + table, kStep);
  if (record.rows() == 0) {
    result.seconds = detail::seconds_since(start);
    return result;
  }
  result.fenced_at = record.text(0, 0);
  result.label = record.text(0, 1);
  result.previous_setting = record.opt_text(0, 2);
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
  spdlog::info("replication unfence: blue unfenced ({:.3f} s)", result.seconds);
  return result;
}

FenceState Manager::fence_state() const {
  constexpr std::string_view kStep = "fence_state";
  FenceState state;
  PgConnection blue = connect_maintenance(Side::kBlue, kStep);
  const std::string table = quote_ident(names_.schema) + ".fence";
  if (blue.exec("SELECT to_regclass($1) IS NOT NULL", {table}, kStep).boolean(0, 0)) {
    PgResult record = blue.exec(
        "SELECT fenced_at::text, coalesce(label, ''), previous_setting FROM " + table, kStep);
    if (record.rows() > 0) {
      state.recorded = true;
      state.fenced_at = record.text(0, 0);
      state.label = record.text(0, 1);
      state.previous_setting = record.opt_text(0, 2);
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
