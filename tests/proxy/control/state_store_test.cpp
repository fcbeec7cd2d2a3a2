// The state file: its format (round trip, older files, torn files), the start-up decision on
// whose servers it speaks of, and a failed directory fsync after the rename.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "proxy/control/state_store.hpp"

using namespace pgflip::proxy;

namespace {

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("pgflip-state-test-" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  [[nodiscard]] std::string file(const std::string& name) const { return (path / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary | std::ios::trunc) << text;
  }
  [[nodiscard]] std::string read(const std::string& name) const {
    std::ifstream in(path / name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
};

const std::string kPath = "/var/lib/pgflip/state.json";
const ServerIdentity kBlue{"7301000000000000001", "10.0.0.1", 5432, "app"};
const ServerIdentity kGreen{"7401000000000000002", "10.0.0.2", 5432, "app"};

ActiveState green_state() {
  return ActiveState{"green", 3, "so-1-2", "2025-01-31T12:00:00Z", kBlue, kGreen};
}

/// The configured server: same address and database as `identity`, system identifier as read.
ConfiguredServer reached(ServerIdentity identity, std::string system_identifier) {
  identity.system_identifier = std::move(system_identifier);
  return ConfiguredServer{std::move(identity), {}};
}
ConfiguredServer unreachable(ServerIdentity identity) {
  identity.system_identifier.clear();
  return ConfiguredServer{std::move(identity), "connection refused"};
}

}  // namespace

TEST_CASE("a state file with identities round-trips through the disk") {
  TempDir dir;
  const auto path = dir.file("state.json");
  CHECK(store_active_state(path, green_state()).empty());
  const auto loaded = load_active_state(path);
  REQUIRE(loaded);
  CHECK(loaded->active == "green");
  CHECK(loaded->epoch == 3);
  CHECK(loaded->switchover_id == "so-1-2");
  CHECK(loaded->committed_at == "2025-01-31T12:00:00Z");
  REQUIRE(loaded->blue);
  REQUIRE(loaded->green);
  CHECK(*loaded->blue == kBlue);
  CHECK(*loaded->green == kGreen);
  CHECK(dir.read("state.json").find("\"version\":2") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK_FALSE(load_active_state(dir.file("absent.json")));
}

TEST_CASE("an older state file (format 1, no identities) is read") {
  const auto state = parse_active_state(
      R"({"version":1,"active":"green","epoch":1,"switchover_id":"so-9","committed_at":"x"})",
      kPath);
  CHECK(state.active == "green");
  CHECK(state.epoch == 1);
  CHECK_FALSE(state.blue);
  CHECK_FALSE(state.green);
  CHECK(parse_active_state(R"({"active":"blue"})", kPath).active == "blue");
}

TEST_CASE("a torn, garbage or foreign state file is refused, naming the file") {
  const auto full = serialize_active_state(green_state());
  // Every proper prefix of a valid file (a torn write) is refused, never read as something else.
  for (std::size_t n = 0; n + 1 < full.size(); ++n) {
    CAPTURE(n);
    CHECK_THROWS_WITH_AS((void)parse_active_state(full.substr(0, n), kPath),
                         doctest::Contains(kPath.c_str()), std::runtime_error);
  }
  const char* bad[] = {
      "garbage",
      "[1,2]",
      R"({"active":"purple"})",
      R"({"epoch":1})",
      R"({"version":3,"active":"blue"})",
      R"({"version":"2","active":"blue"})",
      R"({"active":"green","green":"7401"})",
      R"({"active":"green","green":{"system_identifier":"abc","host":"h","port":1,"database":""}})",
      R"({"active":"green","green":{"system_identifier":"7401","host":"h","port":0,"database":""}})",
      R"({"active":"green","green":{"system_identifier":"7401","port":5432,"database":""}})",
      R"({"active":"green","green":{"host":"h","port":5432,"database":""}})",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS((void)parse_active_state(text, kPath), doctest::Contains(kPath.c_str()),
                         std::runtime_error);
  }
}

TEST_CASE("check_server: same cluster, moved, adopted, unverified, another cluster or database") {
  CHECK(check_server(kBlue, kBlue) == IdentityOutcome::kMatch);
  auto moved = kBlue;
  moved.port = 6432;
  CHECK(check_server(kBlue, moved) == IdentityOutcome::kMoved);
  moved.host = "/run/postgresql";
  CHECK(check_server(kBlue, moved) == IdentityOutcome::kMoved);
  CHECK(check_server(std::nullopt, kBlue) == IdentityOutcome::kAdopt);
  auto unknown = kBlue;
  unknown.system_identifier.clear();
  CHECK(check_server(kBlue, unknown) == IdentityOutcome::kUnverified);
  CHECK(check_server(std::nullopt, unknown) == IdentityOutcome::kUnverified);
  auto other = kBlue;
  other.system_identifier = "7999";
  CHECK(check_server(kBlue, other) == IdentityOutcome::kMismatch);
  auto other_db = kBlue;
  other_db.database = "billing";
  CHECK(check_server(kBlue, other_db) == IdentityOutcome::kMismatch);
}

TEST_CASE("decide_startup: the configured servers are the file's") {
  const auto d = decide_startup(kPath, green_state(), reached(kBlue, kBlue.system_identifier),
                                reached(kGreen, kGreen.system_identifier));
  CHECK(d.refusal.empty());
  CHECK(d.warnings.empty());
  CHECK_FALSE(d.rewrite);
}

TEST_CASE("decide_startup: another deployment's servers are refused, naming both and the fix") {
  // Deployment B (its own clusters) started with deployment A's file.
  const auto d = decide_startup(kPath, green_state(), reached(kBlue, "7302000000000000003"),
                                reached(kGreen, "7402000000000000004"));
  CHECK_FALSE(d.rewrite);
  CHECK(d.refusal.find(kPath) != std::string::npos);
  // What the file says, what is configured, and which key.
  CHECK(d.refusal.find("system_identifier 7301000000000000001") != std::string::npos);
  CHECK(d.refusal.find("system_identifier 7302000000000000003") != std::string::npos);
  CHECK(d.refusal.find("system_identifier 7401000000000000002") != std::string::npos);
  CHECK(d.refusal.find("system_identifier 7402000000000000004") != std::string::npos);
  CHECK(d.refusal.find("switchover.state_file") != std::string::npos);
  CHECK(d.refusal.find("blue.host/blue.port 10.0.0.1:5432") != std::string::npos);

  // One mismatching server is enough, even under a file saying blue.
  auto blue_file = green_state();
  blue_file.active = "blue";
  const auto one = decide_startup(kPath, blue_file, reached(kBlue, kBlue.system_identifier),
                                  reached(kGreen, "7402000000000000004"));
  CHECK(one.refusal.find("green.host/green.port") != std::string::npos);
  CHECK(one.refusal.find("blue.host") == std::string::npos);

  // A mismatch is refused even when the other server cannot be reached.
  CHECK_FALSE(decide_startup(kPath, green_state(), reached(kBlue, "7302"), unreachable(kGreen))
                  .refusal.empty());
}

TEST_CASE("decide_startup: the same cluster under another database is another deployment") {
  auto billing = kBlue;
  billing.database = "billing";
  auto green_billing = kGreen;
  green_billing.database = "billing";
  const auto d = decide_startup(kPath, green_state(), reached(billing, kBlue.system_identifier),
                                reached(green_billing, kGreen.system_identifier));
  CHECK(d.refusal.find("blue.database is \"billing\"") != std::string::npos);
  CHECK(d.refusal.find("database \"app\"") != std::string::npos);
  CHECK(d.refusal.find("set \"database\" under \"blue\" in " + kPath) != std::string::npos);
}

TEST_CASE("decide_startup: a moved server is accepted, logged, and the file rewritten") {
  auto green_moved = kGreen;
  green_moved.host = "10.9.9.9";
  green_moved.port = 6543;
  const auto d = decide_startup(kPath, green_state(), reached(kBlue, kBlue.system_identifier),
                                reached(green_moved, kGreen.system_identifier));
  CHECK(d.refusal.empty());
  REQUIRE(d.warnings.size() == 1);
  CHECK(d.warnings[0].find("green moved") != std::string::npos);
  CHECK(d.warnings[0].find("10.0.0.2:5432") != std::string::npos);
  CHECK(d.warnings[0].find("10.9.9.9:6543") != std::string::npos);
  REQUIRE(d.rewrite);
  CHECK(d.rewrite->active == "green");
  CHECK(d.rewrite->epoch == 3);
  CHECK(d.rewrite->switchover_id == "so-1-2");
  CHECK(*d.rewrite->blue == kBlue);
  CHECK(d.rewrite->green->host == "10.9.9.9");
  CHECK(d.rewrite->green->port == 6543);
  CHECK(d.rewrite->green->system_identifier == kGreen.system_identifier);
}

TEST_CASE("decide_startup: an older file is adopted, recording what can be read") {
  ActiveState old{"green", 1, "so-9", "x", std::nullopt, std::nullopt};
  const auto both = decide_startup(kPath, old, reached(kBlue, kBlue.system_identifier),
                                   reached(kGreen, kGreen.system_identifier));
  CHECK(both.refusal.empty());
  CHECK(both.warnings.size() == 2);
  CHECK(both.warnings[0].find("older pgflip") != std::string::npos);
  REQUIRE(both.rewrite);
  CHECK(*both.rewrite->blue == kBlue);
  CHECK(*both.rewrite->green == kGreen);

  // Green down: served as before (nothing to check it against), blue recorded now.
  const auto green_down =
      decide_startup(kPath, old, reached(kBlue, kBlue.system_identifier), unreachable(kGreen));
  CHECK(green_down.refusal.empty());
  REQUIRE(green_down.rewrite);
  CHECK(*green_down.rewrite->blue == kBlue);
  CHECK_FALSE(green_down.rewrite->green);

  // Nothing reachable: nothing to record, and the old file still routes as before.
  const auto none = decide_startup(kPath, old, unreachable(kBlue), unreachable(kGreen));
  CHECK(none.refusal.empty());
  CHECK_FALSE(none.rewrite);
  CHECK_FALSE(none.warnings.empty());
}

TEST_CASE("decide_startup: a server that cannot be reached at start-up") {
  auto blue_file = green_state();
  blue_file.active = "blue";
  // File says blue, blue down: served as today (clients get blue's errors), logged.
  const auto blue_down = decide_startup(kPath, blue_file, unreachable(kBlue),
                                        reached(kGreen, kGreen.system_identifier));
  CHECK(blue_down.refusal.empty());
  REQUIRE(blue_down.warnings.size() == 1);
  CHECK(blue_down.warnings[0].find("blue's system identifier could not be read") !=
        std::string::npos);
  // File says blue, green down: blue serves.
  CHECK(
      decide_startup(kPath, blue_file, reached(kBlue, kBlue.system_identifier), unreachable(kGreen))
          .refusal.empty());

  // File says green, green down, blue matches and green is where the file says: served, loudly.
  const auto vouched = decide_startup(kPath, green_state(), reached(kBlue, kBlue.system_identifier),
                                      unreachable(kGreen));
  CHECK(vouched.refusal.empty());
  REQUIRE(vouched.warnings.size() == 2);
  CHECK(vouched.warnings[1].find("UNVERIFIED") != std::string::npos);

  // File says green, green down and blue down: refused.
  const auto both_down =
      decide_startup(kPath, green_state(), unreachable(kBlue), unreachable(kGreen));
  CHECK(both_down.refusal.find("cannot be verified") != std::string::npos);
  CHECK(both_down.refusal.find(kPath) != std::string::npos);

  // File says green, green down and configured elsewhere than the file says: refused.
  auto green_elsewhere = kGreen;
  green_elsewhere.port = 7777;
  const auto elsewhere = decide_startup(
      kPath, green_state(), reached(kBlue, kBlue.system_identifier), unreachable(green_elsewhere));
  CHECK(elsewhere.refusal.find("10.0.0.2:7777") != std::string::npos);
  CHECK(elsewhere.refusal.find("10.0.0.2:5432") != std::string::npos);

  // No [green] configured: only blue is checked.
  CHECK(decide_startup(kPath, blue_file, reached(kBlue, kBlue.system_identifier), std::nullopt)
            .refusal.empty());
}

TEST_CASE("a failed directory fsync after the rename does not throw: the file says green") {
  TempDir dir;
  const auto path = dir.file("state.json");
  auto blue = green_state();
  blue.active = "blue";
  CHECK(store_active_state(path, blue).empty());
  ::setenv("PGFLIP_TEST_STATE_DIR_FSYNC_FAILS", "1", 1);
  std::string note;
  CHECK_NOTHROW(note = store_active_state(path, green_state()));
  ::unsetenv("PGFLIP_TEST_STATE_DIR_FSYNC_FAILS");
  CHECK(note.find("fsync of directory") != std::string::npos);
  CHECK(note.find(path) != std::string::npos);
  CHECK(load_active_state(path)->active == "green");
}

TEST_CASE("a failure before the rename throws and leaves the old file intact") {
  TempDir dir;
  const auto path = dir.file("state.json");
  auto blue = green_state();
  blue.active = "blue";
  CHECK(store_active_state(path, blue).empty());
  std::filesystem::create_directories(path + ".tmp");  // the temp file cannot be created
  CHECK_THROWS_AS((void)store_active_state(path, green_state()), std::runtime_error);
  CHECK(load_active_state(path)->active == "blue");
}
