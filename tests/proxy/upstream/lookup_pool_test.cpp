// The auth.query connection pool: per worker and per login, capped, and never handing out a
// connection the server spoke on unasked.
#include "proxy/upstream/lookup_pool.hpp"

#include <doctest/doctest.h>

#include <utility>
#include <vector>

using namespace pgflip::proxy;

namespace {

/// A connected pair: the pooled end (as a server connection of `io`) and the "server" end.
struct Pair {
  ServerStream pooled;
  asio::local::stream_protocol::socket server;
};

Pair make_pair(asio::io_context& io) {
  asio::local::stream_protocol::socket a(io);
  asio::local::stream_protocol::socket b(io);
  asio::local::connect_pair(a, b);
  StreamSocket socket(io);
  socket.assign(asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), a.release());
  return Pair{ServerStream(std::move(socket)), std::move(b)};
}

}  // namespace

TEST_CASE("a pooled connection serves the same worker and login only, at most kMaxIdle kept") {
  asio::io_context io;
  asio::io_context other_worker;
  LookupPool pool;
  auto first = make_pair(io);
  pool.give_back(io.get_executor(), "blue/postgres", std::move(first.pooled));
  CHECK(pool.size() == 1);
  CHECK_FALSE(pool.take(io.get_executor(), "green/postgres"));
  CHECK_FALSE(pool.take(other_worker.get_executor(), "blue/postgres"));
  auto taken = pool.take(io.get_executor(), "blue/postgres");
  REQUIRE(taken);
  CHECK(taken->is_open());
  CHECK(pool.size() == 0);

  std::vector<Pair> pairs;
  for (int i = 0; i < 3; ++i) pairs.push_back(make_pair(io));
  for (auto& pair : pairs)
    pool.give_back(io.get_executor(), "blue/postgres", std::move(pair.pooled));
  CHECK(pool.size() == LookupPool::kMaxIdle);
  // The one over the cap was ended politely: the server side reads a Terminate.
  char terminate[5] = {};
  asio::read(pairs.back().server, asio::buffer(terminate));
  CHECK(terminate[0] == 'X');
  pool.clear();
  CHECK(pool.size() == 0);
  asio::read(pairs.front().server, asio::buffer(terminate));
  CHECK(terminate[0] == 'X');
}

TEST_CASE("a connection the server spoke on while idle is closed, not handed out") {
  asio::io_context io;
  LookupPool pool;
  auto pair = make_pair(io);
  pool.give_back(io.get_executor(), "k", std::move(pair.pooled));
  // As a server terminating the connection: a FATAL ErrorResponse arrives unasked.
  const char fatal[] = "E\0\0\0\4";
  asio::write(pair.server, asio::buffer(fatal, 5));
  CHECK_FALSE(pool.take(io.get_executor(), "k"));
  CHECK(pool.size() == 0);
}
