// pgflip daemon entry point: command line, configuration, logging.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>
#include <string>

#include "config/config.hpp"
#include "proxy/daemon.hpp"
#include "proxy/front_door.hpp"

namespace {

constexpr const char* kUsage = R"(pgflip - PostgreSQL proxy for blue/green cutovers

Usage:
  pgflip --config FILE          run the proxy
  pgflip --check-config FILE    validate FILE and exit (0 = valid)
  pgflip --version | --help

Signals: SIGTERM/SIGINT stop gracefully (sessions end at their next transaction
boundary, bounded by server.shutdown_timeout_ms).
)";

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("pgflip");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

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

  setup_logging(config->log.level);
  spdlog::info("pgflip {} starting with {}", PGFLIP_VERSION, config_path);
  pgflip::proxy::Daemon daemon(config);
  return daemon.run();
}
