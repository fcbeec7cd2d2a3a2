// Alarms logged once when they trip and once when they clear; the retained-WAL alarm gauge.
#include "proxy/observe/alarm_latch.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/observe/proxy_metrics.hpp"

using pgflip::proxy::AlarmLatch;
using Strings = std::vector<std::string>;

TEST_CASE("an alarm is reported when it trips and when it clears, not at every poll") {
  AlarmLatch latch;
  auto changes = latch.update({{"shop", false}, {"billing", false}});
  CHECK(changes.tripped.empty());
  CHECK(changes.cleared.empty());

  changes = latch.update({{"shop", true}, {"billing", false}});
  CHECK(changes.tripped == Strings{"shop"});
  CHECK(changes.cleared.empty());
  CHECK(latch.on("shop"));
  CHECK_FALSE(latch.on("billing"));

  for (int poll = 0; poll < 3; ++poll) {  // still on: nothing new to say
    changes = latch.update({{"shop", true}, {"billing", false}});
    CHECK(changes.tripped.empty());
    CHECK(changes.cleared.empty());
  }

  changes = latch.update({{"shop", false}, {"billing", true}});
  CHECK(changes.tripped == Strings{"billing"});
  CHECK(changes.cleared == Strings{"shop"});

  changes = latch.update({{"shop", true}});  // billing no longer polled: cleared
  CHECK(changes.tripped == Strings{"shop"});
  CHECK(changes.cleared == Strings{"billing"});

  changes = latch.update({});  // replication gone
  CHECK(changes.tripped.empty());
  CHECK(changes.cleared == Strings{"shop"});
  CHECK_FALSE(latch.on("shop"));
}

TEST_CASE("the retained-WAL alarm gauge is 0 or 1 per polled database") {
  pgflip::proxy::ProxyMetrics metrics;
  metrics.replication_polled({{"shop", 10, 0.5, 4096, true}, {"billing", 0, 0.0, 512, false}});
  std::string text = metrics.render();
  CHECK(text.find("# TYPE pgflip_replication_retained_wal_alarm gauge\n") != std::string::npos);
  CHECK(text.find("pgflip_replication_retained_wal_alarm{database=\"shop\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("pgflip_replication_retained_wal_alarm{database=\"billing\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("pgflip_replication_retained_wal_bytes{database=\"shop\"} 4096\n") !=
        std::string::npos);

  metrics.replication_polled({});  // green serves: the series go
  text = metrics.render();
  CHECK(text.find("pgflip_replication_retained_wal_alarm{") == std::string::npos);
}
