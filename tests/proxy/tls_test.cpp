// TLS helpers: tls-server-end-point hashes (RFC 5929), certificate loading errors, and a TLS
// handshake through MaybeTlsStream in-process, with and without ALPN "postgresql".
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "proxy/front_door.hpp"
#include "proxy/tls.hpp"

using namespace pgflip::proxy;

namespace {

struct KeyAndCert {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
  std::unique_ptr<X509, decltype(&X509_free)> cert{nullptr, X509_free};
};

/// A self-signed EC P-256 certificate for CN=localhost, signed with `digest`.
KeyAndCert make_certificate(const EVP_MD* digest) {
  KeyAndCert out;
  out.key.reset(EVP_EC_gen("P-256"));
  REQUIRE(out.key);
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, out.key.get());
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  REQUIRE(X509_sign(cert, out.key.get(), digest) > 0);
  return out;
}

std::string digest_of(X509* cert, const EVP_MD* digest) {
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  REQUIRE(X509_digest(cert, digest, hash, &size) == 1);
  return std::string(reinterpret_cast<const char*>(hash), size);
}

/// PEM files in a temporary directory, removed at the end of the test.
struct PemFiles {
  std::filesystem::path dir;
  std::string cert;
  std::string key;
  explicit PemFiles(const KeyAndCert& kc) {
    static int count = 0;
    dir = std::filesystem::temp_directory_path() /
          ("pgflip_tls_test_" + std::to_string(::getpid()) + "_" + std::to_string(++count));
    std::filesystem::create_directories(dir);
    cert = (dir / "cert.pem").string();
    key = (dir / "key.pem").string();
    FILE* f = std::fopen(cert.c_str(), "w");
    PEM_write_X509(f, kc.cert.get());
    std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    PEM_write_PrivateKey(f, kc.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }
  ~PemFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

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
