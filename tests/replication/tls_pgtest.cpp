// Live tests of the manager's connections over TLS: the server's certificate is checked against
// the configured CA (verify-full), and a wrong CA stops the connection.
#include <doctest/doctest.h>

#include "pgtest_support.hpp"
#include "replication/error.hpp"

namespace pgflip::replication::test {
namespace {

ServerLogin blue_over_tcp(std::string sslmode, std::string sslrootcert) {
  ServerLogin login = cluster().blue;
  login.host = "127.0.0.1";
  login.port = static_cast<std::uint16_t>(cluster().blue_tcp_port);
  login.sslmode = std::move(sslmode);
  login.sslrootcert = std::move(sslrootcert);
  return login;
}

}  // namespace

TEST_CASE("verify-full with the test CA: the manager's connection is TLS and checked") {
  REQUIRE_FALSE(cluster().tls_ca_cert.empty());
  PgConnection conn = PgConnection::open(blue_over_tcp("verify-full", cluster().tls_ca_cert),
                                         "postgres", ConnectOptions{}, "test");
  CHECK(
      conn.exec("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", "test").boolean(0, 0));
}

TEST_CASE("verify-ca with a file that is not the server's CA: no connection") {
  // The servers' own certificate is no CA: the chain cannot be verified with it.
  try {
    (void)PgConnection::open(blue_over_tcp("verify-ca", cluster().tls_server_cert), "postgres",
                             ConnectOptions{}, "test");
    FAIL("connected without a verifiable certificate");
  } catch (const ReplicationError& e) {
    CHECK(e.kind() == ErrorKind::kConnection);
    CHECK(std::string(e.what()).find("certificate") != std::string::npos);
  }
}

TEST_CASE("sslmode disable: plain TCP") {
  PgConnection conn =
      PgConnection::open(blue_over_tcp("disable", ""), "postgres", ConnectOptions{}, "test");
  CHECK_FALSE(
      conn.exec("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", "test").boolean(0, 0));
}

}  // namespace pgflip::replication::test
