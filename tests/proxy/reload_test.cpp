// Configuration reload: what is applied, what waits for a restart, and that a bad file changes
// nothing.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/proxy_context.hpp"
#include "proxy/reload.hpp"

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

TEST_CASE("keep_restart_only keeps the listener, TLS and the state file; applies the rest") {
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
