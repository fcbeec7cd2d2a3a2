// Settings of the replication manager: administrative logins, databases, names and limits.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace pgflip::replication {

/// An administrative login to one environment (superuser or equivalent: the manager
/// creates publications FOR ALL TABLES, event triggers, subscriptions and runs ALTER SYSTEM).
struct ServerLogin {
  std::string host;  // host name, address, or Unix-socket directory ('/...')
  std::uint16_t port = 5432;
  std::string user;
  std::string password;  // empty = none (trust, peer, .pgpass)
  std::string maintenance_db =
      "postgres";           // cluster-wide queries, CREATE DATABASE, the fence record
  std::string sslmode;      // empty = libpq's default
  std::string sslrootcert;  // CA file for verify-ca/verify-full; empty = libpq's default
  std::string sslcert;      // client certificate and key; empty = none
  std::string sslkey;
};

/// Everything the manager needs; the daemon maps `[replication]` and `blue.admin_*` onto it.
struct Settings {
  ServerLogin blue;   // the publisher (production)
  ServerLogin green;  // the subscriber (the upgraded copy)

  /// Databases to replicate, one publication and one subscription each. Empty means every
  /// database on blue that is not a template and allows connections, `postgres` included
  /// (skipping a database silently would lose its data at the switchover).
  std::vector<std::string> databases;

  /// Connection string green's subscription uses to reach blue. Empty = built from `blue`
  /// (host, port, user, password) with the database name appended; green's libpq defaults
  /// decide TLS (blue's sslmode and CA file are this host's, not green's).
  std::string blue_conninfo_for_green;

  /// Prefix of every object the manager creates: schema `<prefix>`, publication
  /// `<prefix>_pub`, slot and subscription `<prefix>_<db>_<blue db oid>`, event triggers
  /// `<prefix>_ddl_end` / `<prefix>_ddl_drop`. Lower-case letters, digits and '_' only.
  std::string name_prefix = "pgflip";

  /// Connections of the manager carry this application_name (seen in pg_stat_activity); the
  /// fence keeps pgflip's own connections by pid, never by this name, which anyone can claim.
  std::string application_name = "pgflip-replication";

  std::int64_t retained_wal_alarm_bytes = std::int64_t{1} << 30;

  /// Where pg_dump, pg_dumpall and psql live (schema and role copy). Use the tools of blue's
  /// major version or newer.
  std::string pg_bin_dir = "/usr/lib/postgresql/15/bin";

  std::chrono::milliseconds connect_timeout{10'000};       // per connection attempt
  std::chrono::milliseconds statement_timeout{60'000};     // per statement, server-side
  std::chrono::milliseconds process_timeout{30 * 60'000};  // pg_dump / psql / pg_dumpall
};

}  // namespace pgflip::replication
