// Connection counting: the global limit, per-user and per-database limits, ticket release.
#include <doctest/doctest.h>

#include <thread>
#include <utility>
#include <vector>

#include "proxy/frontdoor/limits.hpp"

using pgflip::proxy::ConnectionLimits;
using Refusal = ConnectionLimits::Refusal;

TEST_CASE("max_client_conn: a connection is counted only when there is room") {
  ConnectionLimits limits;
  CHECK(limits.try_add_client(2));
  CHECK(limits.try_add_client(2));
  CHECK_FALSE(limits.try_add_client(2));
  CHECK(limits.clients() == 2);
  limits.remove_client();
  CHECK(limits.try_add_client(2));
  CHECK(limits.clients() == 2);
}

TEST_CASE("max_client_conn holds under concurrent arrivals") {
  ConnectionLimits limits;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limits.try_add_client(100)) ++admitted;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(admitted == 100);
  CHECK(limits.clients() == 100);
}

TEST_CASE("per-user and per-database limits; tickets release their counts") {
  ConnectionLimits limits;
  ConnectionLimits::Ticket a1;
  ConnectionLimits::Ticket a2;
  ConnectionLimits::Ticket a3;
  CHECK(limits.try_login("alice", "shop", 2, 3, a1) == Refusal::kNone);
  CHECK(limits.try_login("alice", "shop", 2, 3, a2) == Refusal::kNone);
  CHECK(limits.try_login("alice", "shop", 2, 3, a3) == Refusal::kUser);
  CHECK(limits.user_count("alice") == 2);
  ConnectionLimits::Ticket b1;
  ConnectionLimits::Ticket b2;
  CHECK(limits.try_login("bob", "shop", 2, 3, b1) == Refusal::kNone);
  CHECK(limits.try_login("bob", "shop", 2, 3, b2) == Refusal::kDatabase);
  CHECK(limits.database_count("shop") == 3);
  // A refused name leaves nothing behind.
  CHECK(limits.user_count("carol") == 0);
  CHECK(limits.try_login("carol", "shop", 2, 3, b2) == Refusal::kDatabase);
  CHECK(limits.user_count("carol") == 0);
  {
    ConnectionLimits::Ticket moved = std::move(a1);
    CHECK(limits.user_count("alice") == 2);  // the count moved with the ticket
  }
  CHECK(limits.user_count("alice") == 1);
  CHECK(limits.database_count("shop") == 2);
  a1.release();  // moved-from: nothing to release
  CHECK(limits.user_count("alice") == 1);
  a2.release();
  a2.release();  // idempotent
  b1.release();
  CHECK(limits.user_count("alice") == 0);
  CHECK(limits.database_count("shop") == 0);
  // 0 means no limit.
  std::vector<ConnectionLimits::Ticket> many(50);
  for (auto& ticket : many) CHECK(limits.try_login("dave", "db", 0, 0, ticket) == Refusal::kNone);
  CHECK(limits.user_count("dave") == 50);
}
