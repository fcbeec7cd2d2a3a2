// A benchmark reference, not part of pgflip: the cheapest relay a proxy could be.
//
//   null_relay LISTEN_PORT TARGET       TARGET = PORT (127.0.0.1) or a Unix socket path
//
// One thread, one edge-triggered epoll set, no parsing, no state: each readable socket is
// read once and the bytes are sent on to its peer. A short read means the socket is drained
// (an edge-triggered set reports the next arrival), so request/response traffic costs exactly
// one recv and one send per message and direction. Sockets are blocking and reads pass
// MSG_DONTWAIT, so a send waits for room (the peers of a benchmark always read).
// bench/throughput.sh runs it beside pgflip and PgBouncer to show what relaying through user
// space costs on the same machine.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

[[noreturn]] void fail(std::string_view what) {
  std::fprintf(stderr, "null_relay: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               std::strerror(errno));
  std::exit(1);
}

[[nodiscard]] int parse_port(std::string_view text) {
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc{} || end != text.data() + text.size() || port <= 0 || port > 65535) {
    return -1;
  }
  return port;
}

[[nodiscard]] sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// A blocking connection to the target, as a proxy's server connection.
[[nodiscard]] int connect_target(std::string_view target) {
  if (const int port = parse_port(target); port > 0) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    const sockaddr_in address = loopback(port);
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      if (fd >= 0) close(fd);
      return -1;
    }
    set_nodelay(fd);
    return fd;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (target.size() >= sizeof address.sun_path) return -1;
  std::memcpy(address.sun_path, target.data(), target.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/// One side of a relayed connection; `peer` is the other side.
struct End {
  int fd = -1;
  End* peer = nullptr;
};

/// Closes both sides; they are freed after the current batch of events, which may still
/// name them.
void close_pair(End* end, std::vector<End*>& closed) {
  for (End* e : {end, end->peer}) {
    close(e->fd);
    e->fd = -1;
    closed.push_back(e);
  }
}

/// Sends all of `data`, blocking on a full socket buffer; false when the peer is gone.
[[nodiscard]] bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t sent = send(fd, data, size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data += sent;
    size -= static_cast<std::size_t>(sent);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || parse_port(argv[1]) < 0) {
    std::fprintf(stderr, "usage: null_relay LISTEN_PORT TARGET_PORT|UNIX_SOCKET_PATH\n");
    return 2;
  }
  const std::string_view target = argv[2];

  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in address = loopback(parse_port(argv[1]));
  if (bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, SOMAXCONN) != 0) {
    fail("listen");
  }
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  epoll_event listen_event{};
  listen_event.events = EPOLLIN;
  listen_event.data.ptr = nullptr;  // the listener
  if (epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &listen_event) != 0) fail("epoll");

  std::vector<char> buffer(64 * 1024);
  std::array<epoll_event, 128> events{};
  std::vector<End*> closed;
  for (;;) {
    for (End* end : closed) delete end;
    closed.clear();
    const int ready = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      fail("epoll_wait");
    }
    for (int i = 0; i < ready; ++i) {
      if (events[i].data.ptr == nullptr) {
        const int client = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        const int server = connect_target(target);
        if (server < 0) {
          close(client);
          continue;
        }
        set_nodelay(client);
        auto* front = new End{client};
        auto* back = new End{server, front};
        front->peer = back;
        for (End* end : {front, back}) {
          epoll_event event{};
          event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
          event.data.ptr = end;
          epoll_ctl(epoll, EPOLL_CTL_ADD, end->fd, &event);
        }
        continue;
      }
      auto* end = static_cast<End*>(events[i].data.ptr);
      while (end->fd >= 0) {
        const ssize_t got = recv(end->fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (got <= 0 || !send_all(end->peer->fd, buffer.data(), static_cast<std::size_t>(got))) {
          close_pair(end, closed);
          break;
        }
        if (static_cast<std::size_t>(got) < buffer.size()) break;  // drained
      }
    }
  }
}
