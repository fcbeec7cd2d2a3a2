// Test certificates: self-signed keys and certificates made in-process, and PEM files of them.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <filesystem>
#include <memory>
#include <string>

namespace pgflip::test {

struct KeyAndCert {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
  std::unique_ptr<X509, decltype(&X509_free)> cert{nullptr, X509_free};
};

/// A self-signed EC P-256 certificate for CN=localhost, signed with `digest`.
[[nodiscard]] KeyAndCert make_certificate(const EVP_MD* digest);

/// The hash of `cert` (DER) with `digest`, as raw bytes.
[[nodiscard]] std::string digest_of(X509* cert, const EVP_MD* digest);

/// PEM files in a temporary directory, removed at the end of the test.
struct PemFiles {
  std::filesystem::path dir;
  std::string cert;
  std::string key;
  explicit PemFiles(const KeyAndCert& kc);
  PemFiles(const PemFiles&) = delete;
  PemFiles& operator=(const PemFiles&) = delete;
  ~PemFiles();
  /// Replaces the files' contents with `kc` (a certificate renewed in place).
  void write(const KeyAndCert& kc) const;
};

}  // namespace pgflip::test
