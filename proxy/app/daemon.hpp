// The pgflip daemon: worker threads, the client listener, signals and graceful stop.
#pragma once

#include <memory>

#include "config/config.hpp"

namespace pgflip::proxy {

class Daemon {
 public:
  explicit Daemon(std::shared_ptr<const config::Config> config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Serves until SIGTERM or SIGINT, then stops gracefully. Returns the exit code.
  [[nodiscard]] int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgflip::proxy
