// Helpers shared by the replication live-server tests: env file parsing, databases, pgbench.
#include "pgtest_support.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>

namespace pgflip::replication::test {

const ClusterEnv& cluster() {
  static const ClusterEnv env = [] {
    const char* path = std::getenv("PGFLIP_TEST_ENV");
    if (path == nullptr || *path == '\0') {
      throw std::runtime_error(
          "PGFLIP_TEST_ENV is not set (run through ctest, which starts "
          "the pgcluster fixture, or point it at a pgcluster env file)");
    }
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string("cannot read PGFLIP_TEST_ENV file ") + path);
    std::map<std::string, std::string> kv;
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("export ")) line = line.substr(7);
      const auto eq = line.find('=');
      if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
      std::string value = line.substr(eq + 1);
      if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
          value.back() == value.front()) {
        value = value.substr(1, value.size() - 2);
      }
      kv[line.substr(0, eq)] = value;
    }
    for (const char* key :
         {"BLUE_PORT", "BLUE_SOCKET_DIR", "GREEN_PORT", "GREEN_SOCKET_DIR", "PG15_BIN"}) {
      if (!kv.contains(key)) throw std::runtime_error(std::string(path) + " lacks " + key);
    }
    ClusterEnv e;
    // Superuser postgres over each server's Unix socket.
    const auto login = [&](const std::string& socket_dir, const std::string& port) {
      ServerLogin l;
      l.host = kv[socket_dir];
      l.port = static_cast<std::uint16_t>(std::stoi(kv[port]));
      l.user = "postgres";
      return l;
    };
    e.blue = login("BLUE_SOCKET_DIR", "BLUE_PORT");
    e.green = login("GREEN_SOCKET_DIR", "GREEN_PORT");
    e.pg15_bin = kv["PG15_BIN"];
    e.pg17_bin = kv["PG17_BIN"];
    e.blue_tcp_port = std::stoi(kv["BLUE_PORT"]);
    e.tls_ca_cert = kv["TLS_CA_CERT"];
    e.tls_server_cert = kv["TLS_SERVER_CERT"];
    return e;
  }();
  return env;
}

Settings settings_for(std::vector<std::string> databases) {
  Settings s;
  s.blue = cluster().blue;
  s.green = cluster().green;
  s.databases = std::move(databases);
  s.pg_bin_dir = cluster().pg15_bin;
  s.statement_timeout = std::chrono::seconds(120);
  return s;
}

std::string unique_name(std::string_view base) {
  static std::atomic<int> counter{0};
  return std::string(base) + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

PgConnection blue(const std::string& database) {
  return PgConnection::open(cluster().blue, database, ConnectOptions{}, "test");
}

PgConnection green(const std::string& database) {
  return PgConnection::open(cluster().green, database, ConnectOptions{}, "test");
}

std::int64_t scalar(PgConnection& conn, const std::string& sql) {
  return conn.exec(sql, "test").int64(0, 0);
}

AppConnection::AppConnection(const ServerLogin& login, const std::string& database,
                             const std::string& application_name, const std::string& replication)
    : conn_(nullptr, &PQfinish) {
  const std::string info = conninfo_string({{"host", login.host},
                                            {"port", std::to_string(login.port)},
                                            {"user", login.user},
                                            {"dbname", database},
                                            {"application_name", application_name},
                                            {"replication", replication}});
  conn_.reset(PQconnectdb(info.c_str()));
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    throw std::runtime_error("app connection failed: " + std::string(PQerrorMessage(conn_.get())));
  }
}

std::string AppConnection::run(const std::string& sql) {
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(conn_.get(), sql.c_str()), &PQclear);
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return "";
  const char* code = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  if (code != nullptr) return code;
  return "connection";
}

ServerLogin as_user(const ServerLogin& login, const std::string& user) {
  ServerLogin l = login;
  l.user = user;
  l.password.clear();
  return l;
}

std::string login_refusal(const ServerLogin& login, const std::string& database,
                          const std::string& replication) {
  const std::string info = conninfo_string({{"host", login.host},
                                            {"port", std::to_string(login.port)},
                                            {"user", login.user},
                                            {"dbname", database},
                                            {"application_name", "app"},
                                            {"replication", replication}});
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(info.c_str()), &PQfinish);
  if (PQstatus(conn.get()) == CONNECTION_OK) return "";
  return PQerrorMessage(conn.get());
}

TestDatabase::TestDatabase(std::string_view base, bool also_on_green) : name_(unique_name(base)) {
  PgConnection b = blue();
  b.run("CREATE DATABASE " + quote_ident(name_), "test");
  if (also_on_green) {
    PgConnection g = green();
    g.run("CREATE DATABASE " + quote_ident(name_), "test");
  }
}

TestDatabase::~TestDatabase() {
  try {
    Manager m(settings_for({name_}));
    (void)m.cleanup();
    const std::string drop = "DROP DATABASE IF EXISTS " + quote_ident(name_) + " WITH (FORCE)";
    blue().run(drop, "test");
    green().run(drop, "test");
  } catch (const std::exception& e) {
    std::cerr << "cleaning up test database " << name_ << ": " << e.what() << "\n";
  }
}

TestRole::TestRole(std::string_view base, const std::string& password) : name_(unique_name(base)) {
  blue().run("CREATE ROLE " + quote_ident(name_) + " LOGIN PASSWORD " + quote_literal(password),
             "test");
}

TestRole::~TestRole() {
  try {
    const std::string drop = "DROP ROLE IF EXISTS " + quote_ident(name_);
    blue().run(drop, "test");
    green().run(drop, "test");
  } catch (const std::exception& e) {
    std::cerr << "dropping test role " << name_ << ": " << e.what() << "\n";
  }
}

FenceOptions labelled(const std::string& label) {
  FenceOptions o;
  o.label = label;
  return o;
}

ProcessResult pgbench(const std::vector<std::string>& args, const std::string& database,
                      std::chrono::seconds timeout) {
  std::vector<std::string> argv = {
      cluster().pg15_bin + "/pgbench",     "-h", cluster().blue.host, "-p",
      std::to_string(cluster().blue.port), "-U", "postgres"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(database);
  ProcessResult r = run_process(argv, {}, "", std::chrono::steady_clock::now() + timeout);
  INFO("pgbench stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r;
}

void check_no_pgflip_objects(const std::string& database) {
  INFO("database " << database);
  PgConnection b = blue();
  CHECK(b.exec("SELECT count(*) FROM pg_replication_slots WHERE database = $1 "
               "OR slot_name LIKE 'pgflip\\_%'",
               {database}, "test")
            .int64(0, 0) == 0);
  PgConnection bdb = blue(database);
  CHECK(scalar(bdb, "SELECT count(*) FROM pg_publication") == 0);
  CHECK(scalar(bdb, "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pgflip%'") == 0);
  CHECK(scalar(bdb, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgflip'") == 0);
  CHECK(scalar(b, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgflip'") == 0);

  PgConnection g = green();
  CHECK(g.exec("SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = "
               "s.subdbid WHERE d.datname = $1 OR s.subname LIKE 'pgflip\\_%'",
               {database}, "test")
            .int64(0, 0) == 0);
  // Origins of dropped subscriptions (pg_<subid>, pg_<subid>_<relid>) go with them.
  CHECK(scalar(g,
               "SELECT count(*) FROM pg_replication_origin WHERE roname ~ '^pg_[0-9]+' "
               "AND NOT EXISTS (SELECT 1 FROM pg_subscription s WHERE roname ~ ('^pg_' || "
               "s.oid || '(_|$)'))") == 0);
  if (g.exec("SELECT 1 FROM pg_database WHERE datname = $1", {database}, "test").rows() > 0) {
    PgConnection gdb = green(database);
    CHECK(scalar(gdb, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgflip'") == 0);
  }
}

}  // namespace pgflip::replication::test
