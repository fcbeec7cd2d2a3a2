// The metrics registry: exposition format 0.0.4 byte for byte, histogram bucketing, sharded
// counting across threads, errors by SQLSTATE, and the HTTP endpoint.
#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy/observe/metrics.hpp"
#include "proxy/observe/metrics_server.hpp"
#include "proxy/observe/proxy_metrics.hpp"

namespace metrics = pgflip::proxy::metrics;
using namespace std::chrono_literals;

TEST_CASE("a small registry renders byte for byte in the text format") {
  metrics::Registry registry;
  auto& requests = registry.add<metrics::Counter>("app_requests_total",
                                                  "Requests served.\nBy code.", {"code", "path"});
  requests.with({"200", "/"}).add(3);
  requests.with({"404", "/a\"b\\c\nd"}).add();
  auto& temperature = registry.add<metrics::Gauge>("app_temperature", "Celsius", {});
  temperature.with({}).set(-1.5);
  const double bounds[] = {0.001, 0.5, 2};
  auto& latency = registry.add<metrics::Histogram>("app_latency_seconds", "Latency", {"db"},
                                                   std::span<const double>(bounds));
  auto& db = latency.with({"x"});
  db.observe(500us);  // bucket 0.001
  db.observe(1ms);    // an exact bound belongs to its bucket (le: less or equal)
  db.observe(250ms);  // bucket 0.5
  db.observe(3s);     // +Inf only
  registry.add<metrics::Counter>("app_empty_total", "No samples yet", {"kind"});

  CHECK(registry.render() ==
        "# HELP app_requests_total Requests served.\\nBy code.\n"
        "# TYPE app_requests_total counter\n"
        "app_requests_total{code=\"200\",path=\"/\"} 3\n"
        "app_requests_total{code=\"404\",path=\"/a\\\"b\\\\c\\nd\"} 1\n"
        "# HELP app_temperature Celsius\n"
        "# TYPE app_temperature gauge\n"
        "app_temperature -1.5\n"
        "# HELP app_latency_seconds Latency\n"
        "# TYPE app_latency_seconds histogram\n"
        "app_latency_seconds_bucket{db=\"x\",le=\"0.001\"} 2\n"
        "app_latency_seconds_bucket{db=\"x\",le=\"0.5\"} 3\n"
        "app_latency_seconds_bucket{db=\"x\",le=\"2\"} 3\n"
        "app_latency_seconds_bucket{db=\"x\",le=\"+Inf\"} 4\n"
        "app_latency_seconds_sum{db=\"x\"} 3.2515\n"
        "app_latency_seconds_count{db=\"x\"} 4\n"
        "# HELP app_empty_total No samples yet\n"
        "# TYPE app_empty_total counter\n");
}

TEST_CASE("histogram buckets: bounds inclusive, cumulative counts, Local merges and empties") {
  const double bounds[] = {0.01, 0.1};
  metrics::Histogram histogram{std::span<const double>(bounds)};
  metrics::Histogram::Local local(histogram);
  CHECK(local.empty());
  local.observe(0ns);
  local.observe(10ms);
  local.observe(10ms + 1ns);
  local.observe(100ms);
  local.observe(-5ms);  // clock trouble counts as 0, never as a huge unsigned value
  local.observe(1h);
  CHECK_FALSE(local.empty());
  CHECK(histogram.snapshot().count() == 0);  // nothing shared until merge
  histogram.merge(local);
  CHECK(local.empty());
  auto snapshot = histogram.snapshot();
  CHECK(snapshot.buckets == std::vector<std::uint64_t>{3, 2, 1});
  CHECK(snapshot.count() == 6);
  CHECK(snapshot.sum_ns == 3600'120'000'001ULL);
  histogram.merge(local);  // merging an empty Local changes nothing
  CHECK(histogram.snapshot().count() == 6);
  histogram.observe(50ms);
  CHECK(histogram.snapshot().buckets == std::vector<std::uint64_t>{3, 3, 1});

  const double bad[] = {0.1, 0.1};
  CHECK_THROWS_AS(metrics::Histogram{std::span<const double>(bad)}, std::invalid_argument);
}

TEST_CASE("counters and histograms add up across threads (one shard each)") {
  metrics::Registry registry;
  auto& counter = registry.add<metrics::Counter>("c_total", "c", {}).with({});
  const double bounds[] = {1};
  auto& histogram =
      registry.add<metrics::Histogram>("h_seconds", "h", {}, std::span<const double>(bounds))
          .with({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.add();
        histogram.observe(1ms);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(counter.value() == 80000);
  CHECK(histogram.snapshot().count() == 80000);
  CHECK(histogram.snapshot().sum_ns == 80000ULL * 1'000'000);
}

TEST_CASE("numbers, names and label arity") {
  CHECK(metrics::format_value(0) == "0");
  CHECK(metrics::format_value(1) == "1");
  CHECK(metrics::format_value(0.0001) == "0.0001");
  CHECK(metrics::format_value(0.25) == "0.25");
  CHECK(metrics::format_value(1234567) == "1234567");
  CHECK(metrics::format_value(1e-7) == "1e-07");
  CHECK(metrics::format_value(1e300) == "1e+300");
  CHECK(metrics::format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(metrics::format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(metrics::format_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  CHECK(metrics::escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");

  metrics::Registry registry;
  CHECK_THROWS_AS(registry.add<metrics::Counter>("1bad", "x", {}), std::invalid_argument);
  CHECK_THROWS_AS(registry.add<metrics::Counter>("ok_total", "x", {"le"}), std::invalid_argument);
  CHECK_THROWS_AS(registry.add<metrics::Counter>("ok_total", "x", {"__x"}), std::invalid_argument);
  auto& family = registry.add<metrics::Counter>("ok_total", "x", {"a"});
  CHECK_THROWS_AS(family.with({}), std::invalid_argument);
  CHECK_THROWS_AS(family.with({"1", "2"}), std::invalid_argument);
  CHECK_THROWS_AS(registry.add<metrics::Counter>("ok_total", "again", {}), std::invalid_argument);
  CHECK(&family.with({"1"}) == &family.with({"1"}));  // cached references stay valid
}

TEST_CASE("gauge families can be replaced as a whole; collectors run before rendering") {
  metrics::Registry registry;
  auto& lag = registry.add<metrics::Gauge>("lag_bytes", "lag", {"database"});
  lag.replace({{{"a"}, 5}, {{"b"}, 7}});
  int collected = 0;
  registry.add_collector([&] { ++collected; });
  CHECK(registry.render() ==
        "# HELP lag_bytes lag\n# TYPE lag_bytes gauge\nlag_bytes{database=\"a\"} 5\n"
        "lag_bytes{database=\"b\"} 7\n");
  lag.replace({{{"b"}, 1}});
  CHECK(registry.render() ==
        "# HELP lag_bytes lag\n# TYPE lag_bytes gauge\nlag_bytes{database=\"b\"} 1\n");
  lag.replace({});
  CHECK(registry.render() == "# HELP lag_bytes lag\n# TYPE lag_bytes gauge\n");
  CHECK(collected == 3);
}

TEST_CASE("errors by SQLSTATE: counted per code, odd or surplus codes as other") {
  pgflip::proxy::SqlstateCounts counts;
  counts.add("22012");
  counts.add("22012");
  counts.add("42P01");
  counts.add("");       // no 'C' field
  counts.add("2201");   // not five characters
  counts.add("22o12");  // lower case is not a SQLSTATE
  using Row = std::pair<std::string, std::uint64_t>;
  CHECK(counts.snapshot() == std::vector<Row>{{"22012", 2}, {"42P01", 1}, {"other", 3}});
  CHECK(counts.total() == 6);

  pgflip::proxy::SqlstateCounts many;
  const std::size_t slots = pgflip::proxy::SqlstateCounts::kSlots;
  for (std::size_t i = 0; i < slots + 10; ++i) {
    char code[6];
    std::snprintf(code, sizeof code, "P%04zu", i);
    many.add(code);
  }
  const auto rows = many.snapshot();
  REQUIRE(rows.size() == slots + 1);
  CHECK(rows.front() == Row{"P0000", 1});
  CHECK(rows.back() == Row{"other", 10});
  CHECK(many.total() == slots + 10);
}

TEST_CASE("pgflip's registry: per-database counters and errors render under pgflip_ names") {
  pgflip::proxy::ProxyMetrics proxy_metrics;
  auto& shop = proxy_metrics.database("shop");
  CHECK(&proxy_metrics.database("shop") == &shop);
  shop.queries->add(7);
  shop.transactions->add(1);
  shop.errors.add("22012");
  proxy_metrics.switchover_run("committed");
  proxy_metrics.switchover_step("commit", 2ms);
  const std::string text = proxy_metrics.render();
  CHECK(text.find("pgflip_queries_total{database=\"shop\"} 7\n") != std::string::npos);
  CHECK(text.find("pgflip_transactions_total{database=\"shop\"} 1\n") != std::string::npos);
  CHECK(text.find("pgflip_errors_total{database=\"shop\",sqlstate=\"22012\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("pgflip_switchover_runs_total{outcome=\"committed\"} 1\n") != std::string::npos);
  CHECK(text.find("pgflip_switchover_runs_total{outcome=\"failed\"} 0\n") != std::string::npos);
  CHECK(text.find("pgflip_switchover_step_duration_seconds_count{step=\"commit\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("pgflip_client_login_failures_total{reason=\"auth\"} 0\n") != std::string::npos);
  CHECK(text.find("# TYPE pgflip_query_duration_seconds histogram\n") != std::string::npos);
  REQUIRE(proxy_metrics.databases().size() == 1);
  CHECK(proxy_metrics.databases()[0]->name == "shop");
}

namespace {

/// One HTTP/1.1 exchange over a fresh connection; returns the raw response.
std::string http_exchange(const boost::asio::ip::tcp::endpoint& endpoint,
                          const std::string& request) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect(endpoint);
  boost::asio::write(socket, boost::asio::buffer(request));
  std::string response;
  boost::system::error_code ec;
  char chunk[4096];
  for (;;) {
    const std::size_t n = socket.read_some(boost::asio::buffer(chunk), ec);
    if (ec) break;
    response.append(chunk, n);
  }
  return response;
}

}  // namespace

TEST_CASE("the HTTP endpoint: /metrics, /healthz, 404, 405 and oversized requests") {
  std::atomic<bool> healthy{true};
  pgflip::proxy::MetricsServer server(
      "127.0.0.1", 0, [] { return std::string("m_total 1\n"); }, [&] { return healthy.load(); });
  // Port 0 is the kernel's choice; the configuration itself never allows it.
  server.start();
  const auto endpoint = server.local_endpoint();
  REQUIRE(endpoint.port() != 0);

  const std::string close = "Host: x\r\nConnection: close\r\n\r\n";
  std::string response = http_exchange(endpoint, "GET /metrics HTTP/1.1\r\n" + close);
  CHECK(response.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(response.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
        std::string::npos);
  CHECK(response.ends_with("\r\n\r\nm_total 1\n"));

  response = http_exchange(endpoint, "GET /healthz HTTP/1.1\r\n" + close);
  CHECK(response.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(response.ends_with("\r\n\r\nok\n"));
  healthy = false;
  response = http_exchange(endpoint, "GET /healthz HTTP/1.1\r\n" + close);
  CHECK(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));

  response = http_exchange(endpoint, "GET /nope HTTP/1.1\r\n" + close);
  CHECK(response.starts_with("HTTP/1.1 404 Not Found\r\n"));
  response = http_exchange(endpoint, "POST /metrics HTTP/1.1\r\n" + close);
  CHECK(response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
  response = http_exchange(
      endpoint, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                    std::string(pgflip::proxy::MetricsServer::kMaxHeaderBytes, 'a') + "\r\n\r\n");
  CHECK(response.starts_with("HTTP/1.1 400 Bad Request\r\n"));

  // Keep-alive: two requests on one connection, then the client closes.
  response = http_exchange(
      endpoint, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n" + close);
  CHECK(response.find("m_total 1\n") != std::string::npos);
  CHECK(response.find("HTTP/1.1 503") != std::string::npos);

  server.stop();
  server.stop();  // idempotent
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(endpoint, ec);
  CHECK(ec);  // nobody listens any more
}
