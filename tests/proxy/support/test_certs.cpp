// Test certificates: self-signed keys and certificates made in-process, and PEM files of them.
#include "tests/proxy/support/test_certs.hpp"

#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdio>

namespace pgflip::test {

KeyAndCert make_certificate(const EVP_MD* digest) {
  static long serial = 0;
  KeyAndCert out;
  out.key.reset(EVP_EC_gen("P-256"));
  REQUIRE(out.key);
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
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

PemFiles::PemFiles(const KeyAndCert& kc) {
  static int count = 0;
  dir = std::filesystem::temp_directory_path() /
        ("pgflip_tls_test_" + std::to_string(::getpid()) + "_" + std::to_string(++count));
  std::filesystem::create_directories(dir);
  cert = (dir / "cert.pem").string();
  key = (dir / "key.pem").string();
  write(kc);
}

PemFiles::~PemFiles() {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void PemFiles::write(const KeyAndCert& kc) const {
  FILE* f = std::fopen(cert.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_X509(f, kc.cert.get());
  std::fclose(f);
  f = std::fopen(key.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_PrivateKey(f, kc.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

}  // namespace pgflip::test
