// pgflip daemon entry point: command line, configuration, logging.
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "config/config.hpp"
#include "proxy/app/daemon.hpp"
#include "proxy/frontdoor/front_door.hpp"
#include "proxy/observe/log.hpp"

namespace {

constexpr const char* kUsage = R"(pgflip - PostgreSQL proxy for blue/green cutovers

Usage:
  pgflip --config FILE          run the proxy
  pgflip --check-config FILE    validate FILE and exit (0 = valid)
  pgflip --list-config-keys      print every configuration key, one per line
  pgflip --version | --help

Signals: SIGTERM/SIGINT stop gracefully (sessions end at their next transaction
boundary, bounded by server.shutdown_timeout_ms). SIGHUP re-reads FILE and applies
what can change live (as `pgflipctl reload`); an invalid file changes nothing.
)";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--list-config-keys") {
      for (const std::string& key : pgflip::config::known_keys()) std::cout << key << "\n";
      return 0;
    }
    if (arg == "--version") {
      std::cout << "pgflip " << PGFLIP_VERSION << "\n";
      return 0;
    }
    if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
      check_only = arg == "--check-config";
      config_path = argv[++i];
      continue;
    }
    std::cerr << "pgflip: unknown or incomplete argument '" << arg << "'\n\n" << kUsage;
    return 2;
  }
  if (config_path.empty()) {
    std::cerr << kUsage;
    return 2;
  }

  // Absolute, so that a reload finds the same file whatever the working directory.
  std::error_code ec;
  if (auto absolute = std::filesystem::absolute(config_path, ec); !ec) {
    config_path = absolute.lexically_normal().string();
  }
  std::shared_ptr<const pgflip::config::Config> config;
  try {
    config = std::make_shared<const pgflip::config::Config>(
        pgflip::config::load_config_file(config_path));
  } catch (const pgflip::config::ConfigError& e) {
    std::cerr << "pgflip: invalid configuration: " << e.what() << "\n";
    return 1;
  }
  if (check_only) {
    // The files the configuration names: certificates, CA files, the users file.
    try {
      pgflip::proxy::FrontDoor front_door;
      front_door.load(*config);
    } catch (const std::exception& e) {
      std::cerr << "pgflip: invalid configuration: " << e.what() << "\n";
      return 1;
    }
    std::cout << "pgflip: " << config_path << " is valid\n";
    return 0;
  }

  pgflip::log::setup(config->log.level, config->log.format == pgflip::config::LogFormat::kJson
                                            ? pgflip::log::Format::kJson
                                            : pgflip::log::Format::kText);
  spdlog::info("pgflip {} starting with {}", PGFLIP_VERSION, config_path);
  pgflip::proxy::Daemon daemon(config);
  return daemon.run();
}
