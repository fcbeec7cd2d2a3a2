// TLS helpers: tls-server-end-point hashes (RFC 5929), certificate loading errors, and a TLS
// handshake through MaybeTlsStream in-process, with and without ALPN "postgresql".
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "proxy/base/tls.hpp"
#include "proxy/frontdoor/front_door.hpp"
#include "tests/proxy/support/test_certs.hpp"

using namespace pgflip::proxy;

using pgflip::test::digest_of;
using pgflip::test::KeyAndCert;
using pgflip::test::make_certificate;
using pgflip::test::PemFiles;

TEST_CASE("tls-server-end-point hashes with the signature's digest, SHA-256 for SHA-1") {
  const KeyAndCert sha256 = make_certificate(EVP_sha256());
  CHECK(tls_server_end_point(sha256.cert.get()) == digest_of(sha256.cert.get(), EVP_sha256()));
  const KeyAndCert sha384 = make_certificate(EVP_sha384());
  CHECK(tls_server_end_point(sha384.cert.get()) == digest_of(sha384.cert.get(), EVP_sha384()));
  CHECK(tls_server_end_point(sha384.cert.get()).size() == 48);
  const KeyAndCert sha1 = make_certificate(EVP_sha1());
  CHECK(tls_server_end_point(sha1.cert.get()) == digest_of(sha1.cert.get(), EVP_sha256()));
}

TEST_CASE("certificate files that cannot be used are errors naming the file") {
  pgflip::config::TlsSettings settings;
  settings.cert_file = "/nonexistent/cert.pem";
  settings.key_file = "/nonexistent/key.pem";
  try {
    (void)make_client_tls_context(settings);
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).starts_with(
        "tls.cert_file /nonexistent/cert.pem: cannot load the certificate: "));
  }
  // A key that is not the certificate's.
  const KeyAndCert one = make_certificate(EVP_sha256());
  const KeyAndCert other = make_certificate(EVP_sha256());
  PemFiles files(one);
  PemFiles other_files(other);
  settings.cert_file = files.cert;
  settings.key_file = other_files.key;
  try {
    (void)make_client_tls_context(settings);
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("cannot load the private key") != std::string::npos);
  }
  settings.key_file = files.key;
  CHECK(make_client_tls_context(settings)->end_point_hash ==
        digest_of(one.cert.get(), EVP_sha256()));
}

TEST_CASE("which sslmodes check the server certificate, as libpq") {
  using pgflip::config::SslMode;
  pgflip::config::Endpoint endpoint;
  for (auto [mode, root, verifies] :
       {std::tuple{SslMode::kDisable, "", false}, std::tuple{SslMode::kPrefer, "/ca.pem", false},
        std::tuple{SslMode::kRequire, "", false}, std::tuple{SslMode::kRequire, "/ca.pem", true},
        std::tuple{SslMode::kVerifyCa, "/ca.pem", true},
        std::tuple{SslMode::kVerifyFull, "system", true}}) {
    endpoint.sslmode = mode;
    endpoint.sslrootcert = root;
    CHECK(verifies_certificate(endpoint) == verifies);
  }
}

TEST_CASE("a TLS client through MaybeTlsStream: direct TLS needs ALPN postgresql") {
  const KeyAndCert kc = make_certificate(EVP_sha256());
  PemFiles files(kc);
  pgflip::config::TlsSettings settings;
  settings.cert_file = files.cert;
  settings.key_file = files.key;
  auto server_tls = make_client_tls_context(settings);

  for (bool with_alpn : {true, false}) {
    CAPTURE(with_alpn);
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::string server_error = "not run";
    std::string echoed;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
          REQUIRE_FALSE(ec);
          ClientStream stream(std::move(socket));
          server_error = co_await accept_client_tls(stream, *server_tls, {}, true);
          if (!server_error.empty()) co_return;
          CHECK(stream.is_tls());
          std::array<char, 64> data{};
          auto [rec, n] = co_await stream.async_read_some(asio::buffer(data), use_nothrow);
          REQUIRE_FALSE(rec);
          auto [wec, wn] =
              co_await asio::async_write(stream, asio::buffer(data.data(), n), use_nothrow);
          CHECK_FALSE(wec);
          (void)wn;
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          ssl::context context(ssl::context::tls_client);
          if (with_alpn) {
            static const unsigned char kAlpn[] = {10,  'p', 'o', 's', 't', 'g',
                                                  'r', 'e', 's', 'q', 'l'};
            SSL_CTX_set_alpn_protos(context.native_handle(), kAlpn, sizeof(kAlpn));
          }
          ssl::stream<tcp::socket> client(io, context);
          co_await client.next_layer().async_connect(acceptor.local_endpoint(), use_nothrow);
          auto [hec] = co_await client.async_handshake(ssl::stream_base::client, use_nothrow);
          if (hec) co_return;
          co_await asio::async_write(client, asio::buffer(std::string("ping")), use_nothrow);
          std::array<char, 64> data{};
          auto [ec, n] = co_await client.async_read_some(asio::buffer(data), use_nothrow);
          if (!ec) echoed.assign(data.data(), n);
        },
        asio::detached);
    io.run_for(std::chrono::seconds(10));
    if (with_alpn) {
      CHECK(server_error.empty());
      CHECK(echoed == "ping");
    } else {
      CHECK(server_error == "direct TLS connection without ALPN \"postgresql\"");
      CHECK(echoed.empty());
    }
  }
}

TEST_CASE("a client certificate for a server: loaded with its key, errors name the key") {
  const KeyAndCert mine = make_certificate(EVP_sha256());
  const KeyAndCert other = make_certificate(EVP_sha256());
  const PemFiles files(mine);
  const PemFiles other_files(other);
  pgflip::config::Endpoint endpoint;
  endpoint.sslmode = pgflip::config::SslMode::kRequire;
  endpoint.sslcert = files.cert;
  endpoint.sslkey = files.key;
  const auto context = make_server_tls_context(endpoint, "blue");
  X509* loaded = SSL_CTX_get0_certificate(context->native_handle());
  REQUIRE(loaded != nullptr);
  CHECK(X509_cmp(loaded, mine.cert.get()) == 0);

  endpoint.sslkey = other_files.key;
  const std::string mismatch = "green.sslkey " + other_files.key;  // OpenSSL: key mismatch
  CHECK_THROWS_WITH((void)make_server_tls_context(endpoint, "green"),
                    doctest::Contains(mismatch.c_str()));
  endpoint.sslcert = "/nonexistent/client.crt";
  CHECK_THROWS_WITH((void)make_server_tls_context(endpoint, "blue"),
                    doctest::Contains("blue.sslcert /nonexistent/client.crt: cannot load"));
}
