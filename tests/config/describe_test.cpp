// The configuration as SHOW CONFIG rows: every key, defaults, and secrets never shown.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "config/describe.hpp"

using pgflip::config::Config;
using pgflip::config::ConfigEntry;
using pgflip::config::describe;
using pgflip::config::kMaskedSecret;
using pgflip::config::mask_conninfo_password;

namespace {

const ConfigEntry& entry(const std::vector<ConfigEntry>& entries, std::string_view key) {
  const auto found = std::find_if(entries.begin(), entries.end(),
                                  [&](const ConfigEntry& e) { return e.key == key; });
  REQUIRE_MESSAGE(found != entries.end(), "no entry " << key);
  return *found;
}

}  // namespace

TEST_CASE("describe: defaults, changed values and absent [green]") {
  Config config;
  config.server.workers = 4;
  config.auth.admin_users = {"ops", "dba"};
  const auto entries = describe(config);
  CHECK(entries.size() >= 60);
  CHECK(entries.front().key == "server.listen");
  CHECK(entry(entries, "server.listen").value == "127.0.0.1:6432");
  CHECK(entry(entries, "server.listen").is_default);
  CHECK(entry(entries, "server.listen").restart);
  CHECK(entry(entries, "server.workers").value == "4");
  CHECK(entry(entries, "server.workers").default_value == "0");
  CHECK_FALSE(entry(entries, "server.workers").is_default);
  CHECK(entry(entries, "auth.admin_users").value == "['ops', 'dba']");
  CHECK(entry(entries, "admin.console_database").value == "pgflip");
  CHECK(entry(entries, "switchover.timeout_ms").value == "30000");
  CHECK(entry(entries, "switchover.terminate_blue_backends").value == "true");
  CHECK_FALSE(entry(entries, "green.host").value.has_value());
  CHECK(entry(entries, "green.port").default_value == "5432");
  // Keys are unique.
  for (const auto& e : entries) {
    CHECK(std::count_if(entries.begin(), entries.end(),
                        [&](const ConfigEntry& other) { return other.key == e.key; }) == 1);
  }
}

TEST_CASE("describe never shows a password") {
  Config config;
  config.blue.password = "blue-secret";
  config.blue.admin_password = "blue-admin-secret";
  config.green.emplace();
  config.green->password = "green-secret";
  config.auth.query_password = "lookup-secret";
  config.replication.blue_conninfo_for_green =
      "host=blue user=replicator password='conn secret' dbname=app";
  for (const auto& e : describe(config)) {
    const std::string value = e.value.value_or("");
    CHECK_MESSAGE(value.find("secret") == std::string::npos, e.key << " = " << value);
    CHECK(e.default_value.find("secret") == std::string::npos);
  }
  const auto entries = describe(config);
  CHECK(entry(entries, "blue.password").value == std::string(kMaskedSecret));
  CHECK(entry(entries, "blue.password").secret);
  CHECK(entry(entries, "green.admin_password").value == "");  // not set: nothing to hide
  CHECK(entry(entries, "replication.blue_conninfo_for_green").value ==
        "host=blue user=replicator password=******** dbname=app");
}

TEST_CASE("mask_conninfo_password: keyword/value and URI forms") {
  CHECK(mask_conninfo_password("host=a password=x") == "host=a password=********");
  CHECK(mask_conninfo_password("password = 'a b\\' c' host=a") == "password = ******** host=a");
  CHECK(mask_conninfo_password("host=a") == "host=a");
  CHECK(mask_conninfo_password("") == "");
  CHECK(mask_conninfo_password("postgresql://u:pw@h:5432/db") ==
        "postgresql://u:********@h:5432/db");
  CHECK(mask_conninfo_password("postgres://u@h/db?sslmode=require&password=pw") ==
        "postgres://u@h/db?sslmode=require&password=********");
  CHECK(mask_conninfo_password("postgresql://h/db") == "postgresql://h/db");
}
