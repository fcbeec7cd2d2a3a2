// SCRAM-SHA-256 client and server exchanges and their key derivation, on OpenSSL libcrypto.
#include "protocol/scram.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <limits>
#include <stdexcept>

#include "protocol/saslprep.hpp"

namespace pgflip::protocol {
namespace {

constexpr std::size_t kRawNonceSize = 18;  // as libpq and the PostgreSQL server
constexpr std::size_t kDefaultSaltSize = 16;
constexpr std::string_view kSecretPrefix = "SCRAM-SHA-256$";

std::string_view as_view(const ScramKey& key) {
  return {reinterpret_cast<const char*>(key.data()), key.size()};
}

ScramKey to_key(std::string_view bytes) {
  ScramKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(bytes[i]);
  return key;
}

ScramKey sha256(std::string_view data) {
  ScramKey out{};
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != out.size()) {
    throw std::runtime_error("OpenSSL SHA-256 failed");
  }
  return out;
}

ScramKey xor_keys(const ScramKey& a, const ScramKey& b) {
  ScramKey out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

bool keys_equal(const ScramKey& a, const ScramKey& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_bytes(std::size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  return bytes;
}

std::string random_nonce() { return base64_encode(random_bytes(kRawNonceSize)); }

// PBKDF2 over an already prepared password.
ScramKey salted_password_prepared(std::string_view prepared, std::string_view salt,
                                  int iterations) {
  ScramKey out{};
  if (iterations < 1 || PKCS5_PBKDF2_HMAC(prepared.data(), static_cast<int>(prepared.size()),
                                          reinterpret_cast<const unsigned char*>(salt.data()),
                                          static_cast<int>(salt.size()), iterations, EVP_sha256(),
                                          static_cast<int>(out.size()), out.data()) != 1) {
    throw std::runtime_error("OpenSSL PBKDF2 failed");
  }
  return out;
}

// SCRAM messages are comma-separated "a=value" attributes; values never contain commas
// (user names escape them as "=2C").
std::vector<std::string_view> split_attributes(std::string_view message) {
  std::vector<std::string_view> parts;
  for (;;) {
    const std::size_t comma = message.find(',');
    parts.push_back(message.substr(0, comma));
    if (comma == std::string_view::npos) break;
    message.remove_prefix(comma + 1);
  }
  return parts;
}

// The value of `part` if it is "<name>=value".
std::optional<std::string_view> attribute(std::string_view part, char name) {
  if (part.size() < 2 || part[0] != name || part[1] != '=') return std::nullopt;
  return part.substr(2);
}

bool is_extension(std::string_view part) {
  return part.size() >= 2 &&
         ((part[0] >= 'a' && part[0] <= 'z') || (part[0] >= 'A' && part[0] <= 'Z')) &&
         part[1] == '=';
}

// RFC 5802 "printable": 0x21-0x7E except ','.
bool is_valid_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (const char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

std::string escape_username(std::string_view name) {
  std::string out;
  for (const char c : name) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> unescape_username(std::string_view name) {
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] != '=') {
      out.push_back(name[i]);
      continue;
    }
    const std::string_view escape = name.substr(i + 1, 2);
    if (escape == "2C") {
      out.push_back(',');
    } else if (escape == "3D") {
      out.push_back('=');
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  return out;
}

std::optional<int> parse_positive_int(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || text[0] == '-' ||
      text[0] == '+' || value < 1) {
    return std::nullopt;
  }
  return value;
}

std::optional<ScramKey> decode_key(std::string_view text) {
  const auto bytes = base64_decode(text);
  if (!bytes || bytes->size() != ScramKey{}.size()) return std::nullopt;
  return to_key(*bytes);
}

}  // namespace

// ---------------------------------------------------------------------------
// Helpers.

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                   reinterpret_cast<const unsigned char*>(bytes.data()),
                                   static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(size));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  // EVP_DecodeBlock skips surrounding whitespace and counts padding as output bytes, so
  // validate strictly first and trim the padding afterwards.
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  for (std::size_t i = 0; i < text.size() - padding; ++i) {
    const char c = text[i];
    const bool valid = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '+' || c == '/';
    if (!valid) return std::nullopt;
  }
  if (text.empty()) return std::string{};
  std::string out(text.size() / 4 * 3, '\0');
  const int size = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                   reinterpret_cast<const unsigned char*>(text.data()),
                                   static_cast<int>(text.size()));
  if (size < 0 || static_cast<std::size_t>(size) != out.size()) return std::nullopt;
  out.resize(out.size() - padding);
  return out;
}

ScramKey hmac_sha256(std::string_view key, std::string_view data) {
  ScramKey out{};
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &size) == nullptr ||
      size != out.size()) {
    throw std::runtime_error("OpenSSL HMAC-SHA-256 failed");
  }
  return out;
}

ScramKey scram_salted_password(std::string_view password, std::string_view salt, int iterations) {
  return salted_password_prepared(scram_prepare_password(password), salt, iterations);
}

ScramKey scram_client_key(const ScramKey& salted_password) {
  return hmac_sha256(as_view(salted_password), "Client Key");
}

ScramKey scram_server_key(const ScramKey& salted_password) {
  return hmac_sha256(as_view(salted_password), "Server Key");
}

ScramKey scram_stored_key(const ScramKey& client_key) { return sha256(as_view(client_key)); }

// ---------------------------------------------------------------------------
// Client.

ScramSha256Client::ScramSha256Client(const std::string& password, std::string client_nonce)
    : password_(scram_prepare_password(password)),
      nonce_(client_nonce.empty() ? random_nonce() : std::move(client_nonce)) {}

ScramSha256Client ScramSha256Client::from_keys(ScramKey client_key, ScramKey server_key,
                                               std::string client_nonce) {
  ScramSha256Client client;
  client.have_keys_ = true;
  client.client_key_ = client_key;
  client.server_key_ = server_key;
  client.nonce_ = client_nonce.empty() ? random_nonce() : std::move(client_nonce);
  return client;
}

void ScramSha256Client::set_username(std::string username) { username_ = std::move(username); }

void ScramSha256Client::set_channel_binding(std::string cbind_type, std::string cbind_data) {
  binding_ = Binding::kUsed;
  cbind_type_ = std::move(cbind_type);
  cbind_data_ = std::move(cbind_data);
}

void ScramSha256Client::set_channel_binding_supported() { binding_ = Binding::kSupported; }

std::string_view ScramSha256Client::mechanism() const {
  return binding_ == Binding::kUsed ? kScramSha256Plus : kScramSha256;
}

std::string ScramSha256Client::gs2_header() const {
  switch (binding_) {
    case Binding::kUsed:
      return "p=" + cbind_type_ + ",,";
    case Binding::kSupported:
      return "y,,";
    case Binding::kNone:
      break;
  }
  return "n,,";
}

std::string ScramSha256Client::client_first_bare() const {
  return "n=" + escape_username(username_) + ",r=" + nonce_;
}

std::string ScramSha256Client::client_first_message() const {
  return gs2_header() + client_first_bare();
}

std::variant<std::string, ScramError> ScramSha256Client::handle_server_first(
    std::string_view server_first) {
  const auto fail = [&](std::string message) {
    state_ = State::kFailed;
    return ScramError{std::move(message), ScramErrorKind::kProtocol};
  };
  if (state_ != State::kInitial) return fail("unexpected SCRAM server-first-message");

  // r=<nonce>,s=<salt>,i=<iterations>; like libpq, nothing may follow.
  const auto parts = split_attributes(server_first);
  if (parts.size() != 3) {
    return fail(parts.size() > 3
                    ? "malformed SCRAM message (garbage at end of server-first-message)"
                    : "malformed SCRAM message (server-first-message too short)");
  }
  const auto nonce = attribute(parts[0], 'r');
  const auto salt_text = attribute(parts[1], 's');
  const auto iterations_text = attribute(parts[2], 'i');
  if (!nonce || !salt_text || !iterations_text) {
    return fail("malformed SCRAM message (expected r=, s= and i= attributes)");
  }
  if (!nonce->starts_with(nonce_) || nonce->size() <= nonce_.size() || !is_valid_nonce(*nonce)) {
    return fail("invalid SCRAM response (nonce mismatch)");
  }
  const auto salt = base64_decode(*salt_text);
  if (!salt || salt->empty()) return fail("malformed SCRAM message (invalid salt)");
  const auto iterations = parse_positive_int(*iterations_text);
  if (!iterations) return fail("malformed SCRAM message (invalid iteration count)");

  if (!have_keys_) {
    const ScramKey salted = salted_password_prepared(password_, *salt, *iterations);
    client_key_ = scram_client_key(salted);
    server_key_ = scram_server_key(salted);
  }
  std::string cbind_input = gs2_header();
  if (binding_ == Binding::kUsed) cbind_input += cbind_data_;
  std::string final_message = "c=" + base64_encode(cbind_input) + ",r=" + std::string(*nonce);

  std::string auth_message = client_first_bare();
  auth_message += ',';
  auth_message += server_first;
  auth_message += ',';
  auth_message += final_message;
  const ScramKey client_signature =
      hmac_sha256(as_view(scram_stored_key(client_key_)), auth_message);
  const ScramKey proof = xor_keys(client_key_, client_signature);
  expected_server_signature_ = hmac_sha256(as_view(server_key_), auth_message);

  final_message += ",p=" + base64_encode(as_view(proof));
  state_ = State::kFinalSent;
  return final_message;
}

std::optional<ScramError> ScramSha256Client::verify_server_final(std::string_view server_final) {
  const auto fail = [&](std::string message, ScramErrorKind kind) {
    state_ = State::kFailed;
    return ScramError{std::move(message), kind};
  };
  if (state_ != State::kFinalSent) {
    return fail("unexpected SCRAM server-final-message", ScramErrorKind::kProtocol);
  }
  if (const auto error = attribute(server_final, 'e')) {
    return fail("error received from server in SCRAM exchange: " + std::string(*error),
                ScramErrorKind::kAuthenticationFailed);
  }
  const auto verifier = attribute(server_final, 'v');
  if (!verifier) {
    return fail("malformed SCRAM message (expected v= attribute)", ScramErrorKind::kProtocol);
  }
  if (verifier->find(',') != std::string_view::npos) {
    return fail("malformed SCRAM message (garbage at end of server-final-message)",
                ScramErrorKind::kProtocol);
  }
  const auto signature = decode_key(*verifier);
  if (!signature) {
    return fail("malformed SCRAM message (invalid server signature)", ScramErrorKind::kProtocol);
  }
  if (!keys_equal(*signature, expected_server_signature_)) {
    return fail("incorrect server signature", ScramErrorKind::kAuthenticationFailed);
  }
  state_ = State::kDone;
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Secrets.

std::optional<ScramSecret> parse_scram_secret(std::string_view text) {
  if (!text.starts_with(kSecretPrefix)) return std::nullopt;
  text.remove_prefix(kSecretPrefix.size());
  // <iterations>:<salt>$<StoredKey>:<ServerKey>
  const std::size_t dollar = text.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  const std::string_view first = text.substr(0, dollar);
  const std::string_view second = text.substr(dollar + 1);
  const std::size_t colon1 = first.find(':');
  const std::size_t colon2 = second.find(':');
  if (colon1 == std::string_view::npos || colon2 == std::string_view::npos) return std::nullopt;

  ScramSecret secret;
  const auto iterations = parse_positive_int(first.substr(0, colon1));
  const auto salt = base64_decode(first.substr(colon1 + 1));
  const auto stored_key = decode_key(second.substr(0, colon2));
  const auto server_key = decode_key(second.substr(colon2 + 1));
  if (!iterations || !salt || salt->empty() || !stored_key || !server_key) return std::nullopt;
  secret.iterations = *iterations;
  secret.salt = *salt;
  secret.stored_key = *stored_key;
  secret.server_key = *server_key;
  return secret;
}

std::string format_scram_secret(const ScramSecret& secret) {
  return std::string(kSecretPrefix) + std::to_string(secret.iterations) + ":" +
         base64_encode(secret.salt) + "$" + base64_encode(as_view(secret.stored_key)) + ":" +
         base64_encode(as_view(secret.server_key));
}

ScramSecret make_scram_secret(std::string_view password, std::string_view salt, int iterations) {
  ScramSecret secret;
  secret.iterations = iterations;
  secret.salt = salt.empty() ? random_bytes(kDefaultSaltSize) : std::string(salt);
  const ScramKey salted = scram_salted_password(password, secret.salt, iterations);
  secret.stored_key = scram_stored_key(scram_client_key(salted));
  secret.server_key = scram_server_key(salted);
  return secret;
}

// ---------------------------------------------------------------------------
// Server.

ScramSha256Server::ScramSha256Server(ScramSecret secret, std::string server_nonce)
    : secret_(std::move(secret)),
      server_nonce_(server_nonce.empty() ? random_nonce() : std::move(server_nonce)) {}

void ScramSha256Server::set_channel_binding(std::string cbind_type, std::string cbind_data) {
  cbind_type_ = std::move(cbind_type);
  cbind_data_ = std::move(cbind_data);
}

std::vector<std::string> ScramSha256Server::mechanisms() const {
  std::vector<std::string> names;
  if (!cbind_type_.empty()) names.emplace_back(kScramSha256Plus);
  names.emplace_back(kScramSha256);
  return names;
}

std::variant<std::string, ScramError> ScramSha256Server::handle_client_first(
    std::string_view mechanism, std::string_view client_first) {
  const auto fail = [&](std::string message) {
    state_ = State::kFailed;
    return ScramError{std::move(message), ScramErrorKind::kProtocol};
  };
  if (state_ != State::kInitial) return fail("unexpected SCRAM client-first-message");
  const bool plus = mechanism == kScramSha256Plus;
  if (!(mechanism == kScramSha256 || (plus && !cbind_type_.empty()))) {
    return fail("client selected an invalid SASL authentication mechanism");
  }

  // gs2-header: <flag>,[a=authzid], then client-first-bare: n=<user>,r=<nonce>[,ext...]
  const auto parts = split_attributes(client_first);
  if (parts.size() < 4) return fail("malformed SCRAM message (client-first-message too short)");
  const std::string_view flag = parts[0];
  if (flag == "n" || flag == "y") {
    if (plus) {
      return fail(
          "malformed SCRAM message (the client selected SCRAM-SHA-256-PLUS, but the SCRAM "
          "message does not include channel binding data)");
    }
    if (flag == "y" && !cbind_type_.empty()) {
      // The client could bind and thinks we cannot: someone removed -PLUS on the way.
      return fail(
          "SCRAM channel binding negotiation error (the client supports SCRAM channel binding "
          "but thinks the server does not; this server does support channel binding)");
    }
  } else if (const auto type = attribute(flag, 'p')) {
    if (!plus) {
      return fail(
          "malformed SCRAM message (the client selected SCRAM-SHA-256 without channel binding, "
          "but the SCRAM message includes channel binding data)");
    }
    if (*type != cbind_type_) {
      return fail("unsupported SCRAM channel-binding type \"" + std::string(*type) + "\"");
    }
    cbind_type_used_ = std::string(*type);
  } else {
    return fail("malformed SCRAM message (unexpected channel-binding flag)");
  }
  if (!parts[1].empty()) {
    return fail(attribute(parts[1], 'a')
                    ? "client uses authorization identity, but it is not supported"
                    : "malformed SCRAM message (unexpected attribute in gs2 header)");
  }
  gs2_header_ = std::string(flag) + ",,";
  client_first_bare_ = std::string(client_first.substr(gs2_header_.size()));

  if (attribute(parts[2], 'm')) return fail("client requires an unsupported SCRAM extension");
  const auto user = attribute(parts[2], 'n');
  const auto name = user ? unescape_username(*user) : std::nullopt;
  if (!name) return fail("malformed SCRAM message (invalid user name attribute)");
  username_ = *name;
  const auto client_nonce = attribute(parts[3], 'r');
  if (!client_nonce || !is_valid_nonce(*client_nonce)) {
    return fail("malformed SCRAM message (invalid client nonce)");
  }
  for (std::size_t i = 4; i < parts.size(); ++i) {
    if (!is_extension(parts[i])) return fail("malformed SCRAM message (invalid attribute)");
  }

  nonce_ = std::string(*client_nonce) + server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(secret_.salt) +
                  ",i=" + std::to_string(secret_.iterations);
  state_ = State::kFirstSent;
  return server_first_;
}

std::variant<std::string, ScramError> ScramSha256Server::handle_client_final(
    std::string_view client_final) {
  const auto fail = [&](std::string message, ScramErrorKind kind = ScramErrorKind::kProtocol) {
    state_ = State::kFailed;
    return ScramError{std::move(message), kind};
  };
  if (state_ != State::kFirstSent) return fail("unexpected SCRAM client-final-message");

  // c=<cbind>,r=<nonce>[,ext...],p=<proof>; the proof is last and not part of AuthMessage.
  const std::size_t proof_at = client_final.rfind(",p=");
  if (proof_at == std::string_view::npos) {
    return fail("malformed SCRAM message (client proof missing)");
  }
  const std::string_view without_proof = client_final.substr(0, proof_at);
  const std::string_view proof_text = client_final.substr(proof_at + 3);
  const auto parts = split_attributes(without_proof);
  if (parts.size() < 2) return fail("malformed SCRAM message (client-final-message too short)");
  const auto cbind = attribute(parts[0], 'c');
  const auto nonce = attribute(parts[1], 'r');
  if (!cbind || !nonce) return fail("malformed SCRAM message (expected c= and r= attributes)");
  for (std::size_t i = 2; i < parts.size(); ++i) {
    if (!is_extension(parts[i])) return fail("malformed SCRAM message (invalid attribute)");
  }

  const auto cbind_input = base64_decode(*cbind);
  std::string expected_cbind = gs2_header_;
  if (!cbind_type_used_.empty()) expected_cbind += cbind_data_;
  if (!cbind_input) return fail("malformed SCRAM message (invalid channel binding data)");
  if (*cbind_input != expected_cbind) {
    return fail(cbind_type_used_.empty() ? "unexpected SCRAM channel-binding attribute"
                                         : "SCRAM channel binding check failed",
                ScramErrorKind::kAuthenticationFailed);
  }
  if (*nonce != nonce_) return fail("SCRAM nonce mismatch");
  const auto proof = decode_key(proof_text);
  if (!proof) return fail("malformed SCRAM message (invalid client proof)");

  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message += without_proof;
  const ScramKey client_signature = hmac_sha256(as_view(secret_.stored_key), auth_message);
  const ScramKey client_key = xor_keys(*proof, client_signature);
  if (!keys_equal(scram_stored_key(client_key), secret_.stored_key)) {
    return fail("password authentication failed (SCRAM client proof does not match)",
                ScramErrorKind::kAuthenticationFailed);
  }
  client_key_ = client_key;
  state_ = State::kDone;
  return "v=" + base64_encode(as_view(hmac_sha256(as_view(secret_.server_key), auth_message)));
}

}  // namespace pgflip::protocol
