// Helpers shared by the replication live-server tests: cluster env file, connections, databases.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "replication/manager.hpp"
#include "replication/process.hpp"

namespace pgflip::replication::test {

/// The servers scripts/pgcluster started: read from the file named by $PGFLIP_TEST_ENV.
struct ClusterEnv {
  ServerLogin blue;   // PG15, superuser postgres over the Unix socket
  ServerLogin green;  // PG17
  std::string pg15_bin;
  std::string pg17_bin;
  int blue_tcp_port = 0;        // blue over 127.0.0.1, with TLS (the test CA's certificate)
  std::string tls_ca_cert;      // the test CA (PEM)
  std::string tls_server_cert;  // the servers' certificate, not a CA
};
[[nodiscard]] const ClusterEnv& cluster();

/// Manager settings for these servers and databases (tools from PG15_BIN).
[[nodiscard]] Settings settings_for(std::vector<std::string> databases);

/// "<base>_<pid>_<n>": unique per run and per call, valid unquoted.
[[nodiscard]] std::string unique_name(std::string_view base);

/// An administrative connection as pgflip opens them (writable even while blue is fenced).
[[nodiscard]] PgConnection blue(const std::string& database = "postgres");
[[nodiscard]] PgConnection green(const std::string& database = "postgres");
[[nodiscard]] std::int64_t scalar(PgConnection& conn, const std::string& sql);

/// A plain client connection, as an application would open it (no pgflip options).
class AppConnection {
 public:
  /// `replication` = "database" opens a logical walsender connection (which also runs SQL).
  AppConnection(const ServerLogin& login, const std::string& database,
                const std::string& application_name = "app", const std::string& replication = "");
  /// Runs `sql`; returns "" on success, else the SQLSTATE (or "connection" when the
  /// connection is gone).
  [[nodiscard]] std::string run(const std::string& sql);
  [[nodiscard]] int backend_pid() const { return PQbackendPID(conn_.get()); }

 private:
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
};

/// `login` with another user name (same host, port, no password: the test servers trust local
/// logins).
[[nodiscard]] ServerLogin as_user(const ServerLogin& login, const std::string& user);

/// Tries to log in (`replication` as for AppConnection); returns "" when the login works (and
/// closes it), else libpq's message.
[[nodiscard]] std::string login_refusal(const ServerLogin& login, const std::string& database,
                                        const std::string& replication = "");

/// A database on blue (and, if asked, an empty one on green) that is cleaned up (pgflip
/// cleanup, then DROP DATABASE ... WITH (FORCE) on both sides) when the test ends.
class TestDatabase {
 public:
  explicit TestDatabase(std::string_view base, bool also_on_green = false);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
};

/// A role created on blue (LOGIN, with a password); dropped on both sides when the test ends.
/// Declare it before the TestDatabase that holds its objects (destroyed after it).
class TestRole {
 public:
  explicit TestRole(std::string_view base, const std::string& password = "secret-pw");
  ~TestRole();
  TestRole(const TestRole&) = delete;
  TestRole& operator=(const TestRole&) = delete;
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
};

/// Fence options with just a label.
[[nodiscard]] FenceOptions labelled(const std::string& label);

/// Runs PG15's pgbench against blue; fails the test on a non-zero exit.
[[nodiscard]] ProcessResult pgbench(const std::vector<std::string>& args,
                                    const std::string& database,
                                    std::chrono::seconds timeout = std::chrono::seconds(300));

/// Checks (doctest CHECKs) that neither side holds a slot, publication, subscription, event
/// trigger, replication origin or pgflip schema for `database`.
void check_no_pgflip_objects(const std::string& database);

}  // namespace pgflip::replication::test
