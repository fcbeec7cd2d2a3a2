// Configuration reload: what is applied, what waits for a restart, and that a bad file changes
// nothing.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/describe.hpp"
#include "proxy/control/reload.hpp"
#include "proxy/session/proxy_context.hpp"
#include "tests/proxy/support/test_certs.hpp"

using namespace pgflip::proxy;
namespace config = pgflip::config;

namespace {

bool has(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("pgflip-reload-test-" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary | std::ios::trunc) << text;
  }
  [[nodiscard]] std::string file(const std::string& name) const { return (path / name).string(); }
};

struct Settings {
  std::string extra_server;
  int listen_port = 6432;
  int blue_port = 5432;
  int max_client_conn = 10;
};

std::string config_text(const TempDir& dir, const Settings& s) {
  return "[server]\nlisten = \"127.0.0.1:" + std::to_string(s.listen_port) +
         "\"\nmax_client_conn = " + std::to_string(s.max_client_conn) + "\n" + s.extra_server +
         "[auth]\nmethod = \"scram-sha-256\"\nusers_file = \"" + dir.file("users.txt") +
         "\"\n[blue]\nhost = \"127.0.0.1\"\nport = " + std::to_string(s.blue_port) +
         "\nsslmode = \"disable\"\n[log]\nlevel = \"info\"\n";
}

Settings with_server(std::string extra) {
  Settings s;
  s.extra_server = std::move(extra);
  return s;
}

}  // namespace

TEST_CASE("keep_restart_only keeps the listener, server TLS and the state file; applies the rest") {
  const config::Config before =
      config::parse_config("[blue]\nhost = \"a\"\n[server]\nmax_client_conn = 5\n", "t.toml");
  const config::Config after = config::parse_config(
      "[blue]\nhost = \"b\"\nsslmode = \"disable\"\n[server]\nmax_client_conn = 6\n"
      "listen = \"0.0.0.0:7000\"\nworkers = 3\n[admin]\nsocket = \"/tmp/x.sock\"\n"
      "[switchover]\nstate_file = \"/tmp/state.json\"\n[green]\nhost = \"g\"\n"
      "[log]\nlevel = \"debug\"\n",
      "t.toml");
  ReloadOutcome outcome;
  const config::Config kept = keep_restart_only(before, after, outcome);
  CHECK(kept.server.max_client_conn == 6);
  CHECK(kept.blue.host == "b");
  CHECK(kept.log.level == "debug");
  CHECK(kept.server.listen_host == before.server.listen_host);
  CHECK(kept.server.listen_port == before.server.listen_port);
  CHECK(kept.server.workers == before.server.workers);
  CHECK(kept.admin.socket == before.admin.socket);
  CHECK(kept.switchover.state_file == before.switchover.state_file);
  CHECK(kept.blue.sslmode == before.blue.sslmode);
  CHECK_FALSE(kept.green.has_value());
  CHECK(has(outcome.changed, "server.max_client_conn"));
  CHECK(has(outcome.changed, "blue.host"));
  CHECK(has(outcome.changed, "log.level"));
  for (const char* key : {"server.listen", "server.workers", "admin.socket",
                          "switchover.state_file", "blue.sslmode", "green.host"}) {
    CAPTURE(key);
    CHECK(has(outcome.needs_restart, key));
    CHECK_FALSE(has(outcome.changed, key));
  }
}

TEST_CASE("every restart-only key keeps its value on reload, as SHOW CONFIG marks it") {
  // One new value per restart-only key. The base has a client certificate on both servers, so
  // that each of sslcert and sslkey can change alone.
  using Table = std::map<std::string, std::string>;  // key -> TOML value
  const std::map<std::string, Table> base = {
      {"blue", {{"host", "\"a\""}, {"sslcert", "\"/tmp/b.crt\""}, {"sslkey", "\"/tmp/b.key\""}}},
      {"green", {{"host", "\"g\""}, {"sslcert", "\"/tmp/g.crt\""}, {"sslkey", "\"/tmp/g.key\""}}},
      {"server", {}},
      {"admin", {}},
      {"switchover", {}},
      {"metrics", {}}};
  const std::map<std::string_view, std::string> change = {
      {"server.listen", "\"0.0.0.0:7000\""},
      {"server.workers", "3"},
      {"admin.socket", "\"/tmp/other-admin.sock\""},
      {"admin.console_database", "\"admin\""},
      {"blue.sslmode", "\"require\""},
      {"blue.sslrootcert", "\"/tmp/ca.crt\""},
      {"blue.sslcert", "\"/tmp/other.crt\""},
      {"blue.sslkey", "\"/tmp/other.key\""},
      {"green.sslmode", "\"require\""},
      {"green.sslrootcert", "\"/tmp/ca.crt\""},
      {"green.sslcert", "\"/tmp/other.crt\""},
      {"green.sslkey", "\"/tmp/other.key\""},
      {"switchover.state_file", "\"/tmp/other-state.json\""},
      {"metrics.listen", "\"127.0.0.1:9187\""},
  };
  const auto text = [&](std::string_view changed_key, const std::string& value) {
    std::string out;
    for (auto [name, keys] : base) {
      if (changed_key.starts_with(name + "."))
        keys[std::string(changed_key.substr(name.size() + 1))] = value;
      out += "[" + name + "]\n";
      for (const auto& [key, literal] : keys) out += key + " = " + literal + "\n";
    }
    return out;
  };
  const config::Config before = config::parse_config(text("", ""), "t.toml");
  CHECK(change.size() == config::restart_only_keys().size());
  for (const std::string_view key : config::restart_only_keys()) {
    CAPTURE(key);
    const auto found = change.find(key);
    REQUIRE(found != change.end());
    const config::Config after = config::parse_config(text(key, found->second), "t.toml");
    ReloadOutcome outcome;
    const config::Config kept = keep_restart_only(before, after, outcome);
    CHECK(outcome.needs_restart == std::vector<std::string>{std::string(key)});
    CHECK(outcome.changed.empty());
    CHECK(config::changed_keys(before, kept).empty());
  }
  // SHOW CONFIG marks exactly these, and each of them is a key it shows.
  std::size_t marked = 0;
  for (const config::ConfigEntry& entry : config::describe(before)) {
    CAPTURE(entry.key);
    CHECK(entry.restart == config::restart_only(entry.key));
    marked += entry.restart ? 1 : 0;
  }
  CHECK(marked == config::restart_only_keys().size());
}

TEST_CASE("reload serves a certificate renewed in place to new sessions") {
  using pgflip::test::digest_of;
  using pgflip::test::make_certificate;
  const auto first = make_certificate(EVP_sha256());
  const pgflip::test::PemFiles pem(first);
  TempDir dir;
  dir.write("users.txt", "\"alice\" \"pw1\"\n");
  const std::string tls_table =
      "[tls]\ncert_file = \"" + pem.cert + "\"\nkey_file = \"" + pem.key + "\"\n";
  dir.write("pgflip.toml", config_text(dir, Settings{}) + tls_table);
  ProxyContext context;
  context.set_config(
      std::make_shared<const config::Config>(config::load_config_file(dir.file("pgflip.toml"))));
  context.front_door.load(*context.config());
  context.router.set_active(Router::Active{"blue", context.config()->blue, 1});
  const auto started_with = context.front_door.client_tls();
  REQUIRE(started_with);
  CHECK(started_with->fingerprint == digest_of(first.cert.get(), EVP_sha256()));

  SUBCASE("the same certificate: nothing reported, the context may be rebuilt") {
    const ReloadOutcome outcome = reload_config(context);
    CHECK(outcome.changed.empty());
    CHECK(context.front_door.client_tls()->fingerprint == started_with->fingerprint);
  }

  SUBCASE("renewed: new sessions get the new one, old sessions keep theirs") {
    const auto renewed = make_certificate(EVP_sha256());
    pem.write(renewed);
    const ReloadOutcome outcome = reload_config(context);
    CHECK(outcome.changed == std::vector<std::string>{"tls.cert_file"});
    CHECK(context.front_door.client_tls()->fingerprint ==
          digest_of(renewed.cert.get(), EVP_sha256()));
    CHECK(context.front_door.client_tls()->end_point_hash ==
          digest_of(renewed.cert.get(), EVP_sha256()));
    CHECK(started_with->fingerprint == digest_of(first.cert.get(), EVP_sha256()));
  }

  SUBCASE("a key that does not match: refused whole, the old certificate stays") {
    const auto other = make_certificate(EVP_sha256());
    const pgflip::test::PemFiles other_pem(other);
    std::filesystem::copy_file(other_pem.cert, pem.cert,
                               std::filesystem::copy_options::overwrite_existing);
    CHECK_THROWS_WITH((void)reload_config(context), doctest::Contains("tls.key_file"));
    CHECK(context.front_door.client_tls() == started_with);
  }

  SUBCASE("TLS turned off: reported, new sessions are offered none") {
    dir.write("pgflip.toml", config_text(dir, Settings{}));
    const ReloadOutcome outcome = reload_config(context);
    CHECK(std::find(outcome.changed.begin(), outcome.changed.end(), "tls.cert_file") !=
          outcome.changed.end());
    CHECK(context.front_door.client_tls() == nullptr);
  }
}

TEST_CASE("reload_config applies a valid file and refuses a broken one whole") {
  TempDir dir;
  dir.write("users.txt", "\"alice\" \"pw1\"\n");
  dir.write("pgflip.toml", config_text(dir, Settings{}));
  ProxyContext context;
  context.set_config(
      std::make_shared<const config::Config>(config::load_config_file(dir.file("pgflip.toml"))));
  context.front_door.load(*context.config());
  context.router.set_active(Router::Active{"blue", context.config()->blue, 3});
  REQUIRE(context.front_door.users()->find("bob") == nullptr);

  SUBCASE("new users and limits apply; the listener waits for a restart") {
    dir.write("users.txt", "\"alice\" \"pw1\"\n\"bob\" \"pw2\"\n");
    Settings changed = with_server("max_client_conn_per_user = 2\n");
    changed.listen_port = 6439;
    changed.blue_port = 5444;
    dir.write("pgflip.toml", config_text(dir, changed));
    const ReloadOutcome outcome = reload_config(context);
    CHECK(has(outcome.changed, "auth.users_file"));
    CHECK(has(outcome.changed, "server.max_client_conn_per_user"));
    CHECK(has(outcome.changed, "blue.port"));
    CHECK(has(outcome.needs_restart, "server.listen"));
    CHECK(context.front_door.users()->find("bob") != nullptr);
    CHECK(context.config()->server.max_client_conn_per_user == 2);
    CHECK(context.config()->server.listen_port == 6432);
    // New server connections go to the active environment's new address; same epoch.
    CHECK(context.router.active().endpoint.port == 5444);
    CHECK(context.router.active().epoch == 3);
    CHECK(context.router.active().name == "blue");
  }

  SUBCASE("nothing changed: nothing reported") {
    const ReloadOutcome outcome = reload_config(context);
    CHECK(outcome.changed.empty());
    CHECK(outcome.needs_restart.empty());
  }

  SUBCASE("a syntax error, an unknown key or a bad users file changes nothing") {
    const auto before = context.config();
    const auto users_before = context.front_door.users();
    dir.write("pgflip.toml", config_text(dir, with_server("max_client_conn_per_user = [\n")));
    CHECK_THROWS_WITH_AS((void)reload_config(context), doctest::Contains("syntax error"),
                         config::ConfigError);
    dir.write("pgflip.toml", config_text(dir, with_server("max_clients = 5\n")));
    CHECK_THROWS_WITH_AS((void)reload_config(context),
                         doctest::Contains("server.max_clients: unknown key"), config::ConfigError);
    Settings more;
    more.max_client_conn = 11;
    dir.write("pgflip.toml", config_text(dir, more));
    dir.write("users.txt", "\"alice\" \"pw1\"\nbob pw2\n");
    CHECK_THROWS_WITH((void)reload_config(context), doctest::Contains("users.txt:2"));
    CHECK(context.config() == before);
    CHECK(context.front_door.users() == users_before);
    CHECK(context.config()->server.max_client_conn == 10);
  }
}
