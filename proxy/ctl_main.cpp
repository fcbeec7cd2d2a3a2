// pgflipctl: the operator's command-line client for pgflip's admin socket.
#include <iostream>
#include <string>

namespace {
constexpr const char* kUsage = R"(pgflipctl - control a running pgflip

Usage:
  pgflipctl --version
  pgflipctl --help

The admin commands (status, replication ..., switchover, abort) arrive with the
admin socket; this build only reports its version.
)";
}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--version") {
    std::cout << "pgflipctl " << PGFLIP_VERSION << "\n";
    return 0;
  }
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << kUsage;
  return 2;
}
