// CancelRegistry: unique keys, exact-match lookup, release.
#include <doctest/doctest.h>

#include <set>

#include "proxy/frontdoor/cancel_registry.hpp"

using pgflip::proxy::CancelRegistry;
using pgflip::proxy::CancelTarget;

TEST_CASE("keys are unique and only an exact key finds the target") {
  CancelRegistry registry;
  std::set<std::int32_t> pids;
  for (int i = 0; i < 1000; ++i) {
    auto [pid, secret] = registry.allocate();
    CHECK(pid > 0);
    CHECK(pids.insert(pid).second);
    registry.set_target(pid, CancelTarget{"127.0.0.1", 5432, 100 + i, 7});
  }
  CHECK(registry.size() == 1000);

  auto [pid, secret] = registry.allocate();
  CHECK_FALSE(registry.find(pid, secret).has_value());  // no server yet
  registry.set_target(pid, CancelTarget{"/tmp", 5433, 4242, 99});
  auto target = registry.find(pid, secret);
  REQUIRE(target.has_value());
  CHECK(target->process_id == 4242);
  CHECK(target->host == "/tmp");
  CHECK_FALSE(registry.find(pid, secret ^ 1).has_value());
  CHECK_FALSE(registry.find(pid + 1, secret).has_value());
  registry.release(pid);
  CHECK_FALSE(registry.find(pid, secret).has_value());
}
