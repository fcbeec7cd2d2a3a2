// The mapping of [blue]/[green] onto the replication manager's logins.
#include "proxy/control/replication_settings.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace pgflip::proxy;
namespace config = pgflip::config;

TEST_CASE("the replication manager checks servers as the proxy does: sslmode and CA file") {
  const config::Config c = config::parse_config(
      "[blue]\nhost = \"blue.internal\"\nadmin_user = \"admin\"\nadmin_password = \"pw\"\n"
      "sslmode = \"verify-full\"\nsslrootcert = \"/etc/pgflip/blue-ca.crt\"\n"
      "[green]\nhost = \"green.internal\"\nadmin_user = \"admin\"\nsslmode = \"require\"\n"
      "sslrootcert = \"system\"\n",
      "t.toml");
  const auto settings = replication_settings(c);
  CHECK(settings.blue.host == "blue.internal");
  CHECK(settings.blue.user == "admin");
  CHECK(settings.blue.sslmode == "verify-full");
  CHECK(settings.blue.sslrootcert == "/etc/pgflip/blue-ca.crt");
  CHECK(settings.green.sslmode == "require");
  // libpq before 16 reads "system" as a file name: it gets OpenSSL's default CA file.
  CHECK(settings.green.sslrootcert.starts_with("/"));
}

TEST_CASE("sslmode disable and prefer pass through; no CA file stays empty") {
  const config::Config c = config::parse_config(
      "[blue]\nhost = \"a\"\nsslmode = \"disable\"\n[green]\nhost = \"b\"\n", "t.toml");
  const auto settings = replication_settings(c);
  CHECK(settings.blue.sslmode == "disable");
  CHECK(settings.green.sslmode == "prefer");
  CHECK(settings.blue.sslrootcert.empty());
}
