// MD5 password hashing for AuthenticationMD5Password, on OpenSSL's EVP digests.
#include "protocol/md5.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace pgflip::protocol {
namespace {

constexpr std::string_view kPrefix = "md5";
constexpr std::size_t kHexSize = 32;

std::string salted(std::string_view hex, std::array<std::uint8_t, 4> salt) {
  std::string data(hex);
  for (const std::uint8_t byte : salt) data.push_back(static_cast<char>(byte));
  return data;
}

}  // namespace

std::string md5_hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_md5(), nullptr) != 1 ||
      size != 16) {
    // Only if the OpenSSL configuration forbids MD5 (FIPS mode).
    throw std::runtime_error("OpenSSL cannot compute MD5");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(kHexSize);
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

std::string md5_secret(std::string_view user, std::string_view password) {
  std::string data(password);
  data.append(user);
  return std::string(kPrefix) + md5_hex(data);
}

bool is_md5_secret(std::string_view secret) {
  if (secret.size() != kPrefix.size() + kHexSize || !secret.starts_with(kPrefix)) return false;
  for (const char c : secret.substr(kPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string md5_password_response(std::string_view user, std::string_view password,
                                  std::array<std::uint8_t, 4> salt) {
  return md5_response_from_secret(md5_secret(user, password), salt);
}

std::string md5_response_from_secret(std::string_view md5_secret,
                                     std::array<std::uint8_t, 4> salt) {
  if (!is_md5_secret(md5_secret)) return {};
  return std::string(kPrefix) + md5_hex(salted(md5_secret.substr(kPrefix.size()), salt));
}

bool verify_md5_response(std::string_view md5_secret, std::array<std::uint8_t, 4> salt,
                         std::string_view response) {
  const std::string expected = md5_response_from_secret(md5_secret, salt);
  if (expected.empty() || response.size() != expected.size()) return false;
  return CRYPTO_memcmp(expected.data(), response.data(), expected.size()) == 0;
}

}  // namespace pgflip::protocol
