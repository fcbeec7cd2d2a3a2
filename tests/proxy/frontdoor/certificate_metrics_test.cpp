// The certificate-expiry metric, read at each scrape from the front door's TLS contexts.
#include <doctest/doctest.h>

#include <ctime>
#include <memory>
#include <string>

#include "proxy/base/tls.hpp"
#include "proxy/frontdoor/front_door.hpp"
#include "proxy/observe/proxy_metrics.hpp"
#include "tests/proxy/support/test_certs.hpp"

TEST_CASE("certificate expiry: read at each scrape from the TLS contexts in force") {
  using namespace pgflip::proxy;
  using pgflip::test::make_certificate;
  const auto now = static_cast<double>(std::time(nullptr));
  const auto client_facing = make_certificate(EVP_sha256());  // valid for one hour
  const pgflip::test::PemFiles files(client_facing);
  pgflip::config::TlsSettings settings;
  settings.cert_file = files.cert;
  settings.key_file = files.key;
  pgflip::config::Endpoint blue;
  blue.sslmode = pgflip::config::SslMode::kRequire;
  blue.sslcert = files.cert;
  blue.sslkey = files.key;
  auto tls = std::make_shared<TlsContexts>();
  tls->client = make_client_tls_context(settings);
  tls->servers.emplace("blue", make_server_tls_context(blue, "blue"));
  FrontDoor front_door;
  ProxyMetrics metrics;
  metrics.watch_certificates([&] { return front_door.certificate_expiries(); });
  CHECK(metrics.render().find("pgflip_tls_certificate_expiry_timestamp_seconds{") ==
        std::string::npos);  // no TLS yet: no samples

  front_door.set_tls(tls);
  const std::string text = metrics.render();
  for (const char* label : {"tls.cert_file", "blue.sslcert"}) {
    CAPTURE(label);
    const std::string prefix = std::string("pgflip_tls_certificate_expiry_timestamp_seconds{") +
                               "certificate=\"" + label + "\"} ";
    const auto at = text.find(prefix);
    REQUIRE(at != std::string::npos);
    const double expiry = std::stod(text.substr(at + prefix.size()));
    CHECK(expiry >= now + 3590);
    CHECK(expiry <= now + 3610);
  }
  CHECK(text.find("certificate=\"green.sslcert\"") == std::string::npos);
}
