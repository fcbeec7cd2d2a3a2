// The durable record of which environment is active: the switchover's commit point.
#include "proxy/control/state_store.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "proxy/control/replication_settings.hpp"

namespace pgflip::proxy {

namespace json = boost::json;

namespace {

/// Format 1: active, epoch, switchover_id, committed_at. Format 2 adds "blue" and "green".
constexpr std::int64_t kFormatVersion = 2;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::optional<ServerIdentity> parse_server(const json::object& o, std::string_view side,
                                           const std::string& path) {
  const json::value* v = o.if_contains(side);
  if (!v) return std::nullopt;
  const std::string where = "state file " + path + ": " + std::string(side);
  if (!v->is_object()) throw std::runtime_error(where + " must be an object");
  const json::object& s = v->as_object();
  auto text = [&](std::string_view key) {
    const json::value* field = s.if_contains(key);
    if (!field || !field->is_string()) {
      throw std::runtime_error(where + "." + std::string(key) + " must be a string");
    }
    return std::string(field->as_string());
  };
  ServerIdentity identity;
  identity.system_identifier = text("system_identifier");
  const auto& id = identity.system_identifier;
  if (id.empty() || id.size() > 20 || !std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || c == '-';
      })) {
    throw std::runtime_error(where + ".system_identifier must be a decimal number, got '" + id +
                             "'");
  }
  identity.host = text("host");
  identity.database = text("database");
  const json::value* port = s.if_contains("port");
  if (!port || !port->is_int64() || port->as_int64() < 1 || port->as_int64() > 65535) {
    throw std::runtime_error(where + ".port must be a number in 1..65535");
  }
  identity.port = static_cast<std::uint16_t>(port->as_int64());
  return identity;
}

json::object server_json(const ServerIdentity& s) {
  return json::object{{"system_identifier", s.system_identifier},
                      {"host", s.host},
                      {"port", s.port},
                      {"database", s.database}};
}

std::string quoted(const std::string& database) {
  return database.empty() ? "the client's database" : "database \"" + database + "\"";
}

/// "system_identifier 7301... at 127.0.0.1:5432, database \"app\"".
std::string describe(const ServerIdentity& s) {
  return "system_identifier " + (s.system_identifier.empty() ? "unknown" : s.system_identifier) +
         " at " + s.address() + ", " + quoted(s.database);
}

}  // namespace

ServerIdentity configured_identity(const config::Endpoint& endpoint) {
  return ServerIdentity{"", endpoint.host, endpoint.port, endpoint.database};
}

std::string ServerIdentity::address() const {
  config::Endpoint endpoint;
  endpoint.host = host;
  endpoint.port = port;
  return endpoint.address();
}

ActiveState parse_active_state(const std::string& text, const std::string& path) {
  json::error_code jec;
  const json::value value = json::parse(text, jec);
  if (jec || !value.is_object()) {
    throw std::runtime_error("state file " + path +
                             " is not valid JSON (torn or damaged?); pgflip will not guess which "
                             "environment is active");
  }
  const json::object& o = value.as_object();
  if (const json::value* version = o.if_contains("version")) {
    if (!version->is_int64() || version->as_int64() < 1 || version->as_int64() > kFormatVersion) {
      throw std::runtime_error("state file " + path + ": version " + json::serialize(*version) +
                               " is not one this pgflip reads (1.." +
                               std::to_string(kFormatVersion) + ")");
    }
  }
  ActiveState state;
  if (!o.contains("active") || !o.at("active").is_string()) {
    throw std::runtime_error("state file " + path + " has no \"active\"");
  }
  state.active = std::string(o.at("active").as_string());
  if (state.active != "blue" && state.active != "green") {
    throw std::runtime_error("state file " + path + ": active must be blue or green");
  }
  if (o.contains("epoch") && o.at("epoch").is_int64()) {
    state.epoch = static_cast<std::uint64_t>(o.at("epoch").as_int64());
  }
  if (o.contains("switchover_id") && o.at("switchover_id").is_string()) {
    state.switchover_id = std::string(o.at("switchover_id").as_string());
  }
  if (o.contains("committed_at") && o.at("committed_at").is_string()) {
    state.committed_at = std::string(o.at("committed_at").as_string());
  }
  state.blue = parse_server(o, "blue", path);
  state.green = parse_server(o, "green", path);
  return state;
}

std::string serialize_active_state(const ActiveState& state) {
  json::object o{{"version", kFormatVersion},
                 {"active", state.active},
                 {"epoch", static_cast<std::int64_t>(state.epoch)},
                 {"switchover_id", state.switchover_id},
                 {"committed_at", state.committed_at}};
  if (state.blue) o["blue"] = server_json(*state.blue);
  if (state.green) o["green"] = server_json(*state.green);
  return json::serialize(o) + "\n";
}

std::optional<ActiveState> load_active_state(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read state file " + path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_active_state(text.str(), path);
}

std::string store_active_state(const std::string& path, const ActiveState& state) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path directory = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(directory, ec);
  const std::string body = serialize_active_state(state);
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot create " + temp);
  std::size_t written = 0;
  while (written < body.size()) {
    const ssize_t n = ::write(fd, body.data() + written, body.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail("cannot write " + temp);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("cannot fsync " + temp);
  }
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("cannot rename " + temp + " to " + path);
  // From here the new state is the file's: no throw, whatever the directory fsync says.
  const char* hook = std::getenv("PGFLIP_TEST_STATE_DIR_FSYNC_FAILS");
  int rc = -1;
  if (hook && std::string_view(hook) == "1") {
    errno = EIO;
  } else if (const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
             dir >= 0) {
    rc = ::fsync(dir);
    const int saved = errno;
    ::close(dir);
    errno = saved;
  }
  if (rc == 0) return {};
  std::string note = "state file " + path + " is in place but the fsync of directory " +
                     directory.string() + " failed (" + std::strerror(errno) +
                     "): a crash of the host could bring the previous state back; check "
                     "the disk";
  spdlog::error("{}", note);
  return note;
}

IdentityOutcome check_server(const std::optional<ServerIdentity>& recorded,
                             const ServerIdentity& configured) {
  if (configured.system_identifier.empty()) return IdentityOutcome::kUnverified;
  if (!recorded) return IdentityOutcome::kAdopt;
  if (recorded->system_identifier != configured.system_identifier) {
    return IdentityOutcome::kMismatch;
  }
  // The same cluster under another database is another deployment sharing the servers.
  if (recorded->database != configured.database) return IdentityOutcome::kMismatch;
  if (recorded->host != configured.host || recorded->port != configured.port) {
    return IdentityOutcome::kMoved;
  }
  return IdentityOutcome::kMatch;
}

StartupDecision decide_startup(const std::string& path, const ActiveState& file,
                               const ConfiguredServer& blue,
                               const std::optional<ConfiguredServer>& green) {
  StartupDecision decision;
  ActiveState rewritten = file;
  bool rewrite = false;
  std::vector<std::string> mismatches;
  auto check = [&](std::string_view side, const std::optional<ServerIdentity>& recorded,
                   const ConfiguredServer& configured, std::optional<ServerIdentity>& slot) {
    const std::string name(side);
    const auto outcome = check_server(recorded, configured.identity);
    switch (outcome) {
      case IdentityOutcome::kMatch:
        break;
      case IdentityOutcome::kMoved:
        decision.warnings.push_back(name + " moved: state file " + path + " recorded it at " +
                                    recorded->address() + ", it is configured at " +
                                    configured.identity.address() +
                                    "; same cluster (system_identifier " +
                                    recorded->system_identifier + "): rewriting the file");
        slot = configured.identity;
        rewrite = true;
        break;
      case IdentityOutcome::kAdopt:
        decision.warnings.push_back("state file " + path +
                                    " predates server identities (written by an older pgflip): "
                                    "adopting it, " +
                                    name + " recorded as " + describe(configured.identity));
        slot = configured.identity;
        rewrite = true;
        break;
      case IdentityOutcome::kUnverified:
        decision.warnings.push_back(name + "'s system identifier could not be read at start-up (" +
                                    configured.error + "): " + name + " at " +
                                    configured.identity.address() +
                                    " is not checked against state file " + path);
        break;
      case IdentityOutcome::kMismatch:
        if (recorded->system_identifier != configured.identity.system_identifier) {
          mismatches.push_back("it records " + name + " as " + describe(*recorded) +
                               ", but the configured " + name + " (" + name + ".host/" + name +
                               ".port " + configured.identity.address() +
                               ") is system_identifier " + configured.identity.system_identifier +
                               ", another cluster");
        } else {
          mismatches.push_back("it records " + name + " as " + describe(*recorded) + ", but " +
                               name + ".database is \"" + configured.identity.database +
                               "\" (the same cluster, another database; if " + name +
                               ".database was changed on purpose, set \"database\" under \"" +
                               name + "\" in " + path + " to \"" + configured.identity.database +
                               "\")");
        }
        break;
    }
    return outcome;
  };
  const auto blue_outcome = check("blue", file.blue, blue, rewritten.blue);
  std::optional<IdentityOutcome> green_outcome;
  if (green) green_outcome = check("green", file.green, *green, rewritten.green);
  if (!mismatches.empty()) {
    std::string text = "state file " + path + " speaks of other servers than the configured ones: ";
    for (std::size_t i = 0; i < mismatches.size(); ++i) text += (i ? "; and " : "") + mismatches[i];
    text +=
        ". Is it another pgflip deployment's file? Give each deployment its own "
        "switchover.state_file (the default /var/lib/pgflip/state.json is shared by every pgflip "
        "on the host); if the file is this deployment's, the [blue]/[green] host, port and "
        "database point at the wrong servers";
    decision.refusal = std::move(text);
    return decision;
  }
  // A file saying green sends every client to green: only to a green that is verified, or
  // that is still at the address the file recorded while blue proves the file is ours.
  if (file.active == "green" && green_outcome == IdentityOutcome::kUnverified) {
    const bool blue_verified =
        blue_outcome == IdentityOutcome::kMatch || blue_outcome == IdentityOutcome::kMoved;
    if (!file.green) {
      decision.warnings.push_back("state file " + path +
                                  " predates server identities and says green is active: serving "
                                  "green unverified, as before; its identity is recorded at the "
                                  "first start-up that reaches it");
    } else if (blue_verified && file.green->host == green->identity.host &&
               file.green->port == green->identity.port &&
               file.green->database == green->identity.database) {
      decision.warnings.push_back(
          "serving green UNVERIFIED at " + file.green->address() + ", the address state file " +
          path + " recorded for system_identifier " + file.green->system_identifier +
          ", because blue matches the file (system_identifier " + blue.identity.system_identifier +
          "); green's own identity could not be read (" + green->error + ")");
    } else {
      decision.refusal =
          "state file " + path + " says green is active and records green as " +
          describe(*file.green) + ", but the configured green (green.host/green.port " +
          green->identity.address() + ") cannot be verified: " + green->error +
          (blue_verified ? std::string("; its address or database differs from the file's")
                         : "; and blue does not vouch for the file either (" +
                               (blue.error.empty() ? std::string("no identity recorded for it")
                                                   : blue.error) +
                               ")") +
          ". pgflip does not route clients to a green it cannot verify: start it again once "
          "green answers green.admin_user's login (or fix green.host/green.port to the server "
          "the file records)";
      return decision;
    }
  }
  if (rewrite) decision.rewrite = std::move(rewritten);
  return decision;
}

std::optional<ActiveState> load_verified_state(const config::Config& config) {
  using Side = replication::Manager::Side;
  const std::string& path = config.switchover.state_file;
  auto state = load_active_state(path);
  if (!state) return state;
  std::unique_ptr<replication::Manager> manager;
  std::string manager_error;
  try {
    manager = std::make_unique<replication::Manager>(replication_settings(config));
  } catch (const std::exception& e) {
    manager_error = e.what();
  }
  auto read = [&](const config::Endpoint& endpoint, Side side, const std::string& name) {
    ConfiguredServer server{configured_identity(endpoint), {}};
    if (endpoint.admin_user.empty()) {
      server.error = "no " + name + ".admin_user is configured";
    } else if (!manager) {
      server.error = manager_error;
    } else {
      try {
        server.identity.system_identifier = manager->system_identifier(side);
      } catch (const std::exception& e) {
        server.error = e.what();
      }
    }
    return server;
  };
  const ConfiguredServer blue = read(config.blue, Side::kBlue, "blue");
  std::optional<ConfiguredServer> green;
  if (config.green) green = read(*config.green, Side::kGreen, "green");
  auto decision = decide_startup(path, *state, blue, green);
  for (const auto& warning : decision.warnings) spdlog::warn("{}", warning);
  if (!decision.refusal.empty()) throw std::runtime_error(decision.refusal);
  if (decision.rewrite) {
    try {
      (void)store_active_state(path, *decision.rewrite);  // logs a failed directory fsync
      spdlog::info("state file {} rewritten with the servers' identities", path);
    } catch (const std::exception& e) {
      // The old file still routes the same way; the next start-up tries again.
      spdlog::error("could not rewrite state file {}: {}", path, e.what());
    }
    state = std::move(decision.rewrite);
  }
  return state;
}

}  // namespace pgflip::proxy
