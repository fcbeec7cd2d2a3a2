// systemd notifications: datagrams to the $NOTIFY_SOCKET path or abstract name, nothing without it.
#include "proxy/observe/sd_notify.hpp"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>

using namespace pgflip::proxy;

namespace {

/// A datagram socket bound to `name` (a path, or "@name" for the abstract namespace), with
/// NOTIFY_SOCKET pointing at it while it lives.
struct Receiver {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  explicit Receiver(const std::string& name) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name.front() == '@') address.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd);
  }
  [[nodiscard]] std::string receive() const {
    char buffer[512];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  }
};

}  // namespace

TEST_CASE("notify sends to a socket path and to an abstract name") {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("pgflip-sd-test-" + std::to_string(::getpid()));
  std::filesystem::remove(path);
  {
    Receiver receiver(path.string());
    CHECK(systemd::notify("READY=1\nSTATUS=serving from blue (epoch 1)"));
    CHECK(receiver.receive() == "READY=1\nSTATUS=serving from blue (epoch 1)");
  }
  std::filesystem::remove(path);
  {
    Receiver receiver("@pgflip-sd-test-" + std::to_string(::getpid()));
    CHECK(systemd::notify("STOPPING=1"));
    CHECK(receiver.receive() == "STOPPING=1");
  }
}

TEST_CASE("notify does nothing without a usable NOTIFY_SOCKET") {
  ::unsetenv("NOTIFY_SOCKET");
  CHECK_FALSE(systemd::notify("READY=1"));
  for (const char* value : {"", "@", "relative/socket", "/nonexistent/pgflip/notify"}) {
    CAPTURE(value);
    ::setenv("NOTIFY_SOCKET", value, 1);
    CHECK_FALSE(systemd::notify("READY=1"));
  }
  ::setenv("NOTIFY_SOCKET", ("/" + std::string(200, 'x')).c_str(), 1);  // longer than sun_path
  CHECK_FALSE(systemd::notify("READY=1"));
  ::unsetenv("NOTIFY_SOCKET");
}

TEST_CASE("reloading_state carries the monotonic clock in microseconds") {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const long long before = static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
  const std::string state = systemd::reloading_state();
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  REQUIRE(state.starts_with(prefix));
  const long long usec = std::stoll(state.substr(prefix.size()));
  CHECK(usec >= before);
  CHECK(usec - before < 10'000'000);
}
