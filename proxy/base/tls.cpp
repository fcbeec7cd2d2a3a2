// TLS contexts for both sides (clients to pgflip, pgflip to servers) and channel-binding data.
#include "proxy/base/tls.hpp"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <array>
#include <ctime>
#include <stdexcept>

namespace pgflip::proxy {

namespace {

// ALPN wire format: a length byte, then the name.
constexpr unsigned char kAlpnWire[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
static_assert(sizeof(kAlpnWire) == 1 + kAlpnPostgresql.size());

// Server side of ALPN, as PostgreSQL 17: choose "postgresql", or refuse a client that offers
// only other protocols (it is not talking to a PostgreSQL server on purpose).
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  unsigned char* selected = nullptr;
  const int result =
      SSL_select_next_proto(&selected, outlen, kAlpnWire, sizeof(kAlpnWire), in, inlen);
  *out = selected;
  return result == OPENSSL_NPN_NEGOTIATED ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

// Settings both sides share: TLS 1.2 or newer, no renegotiation, no compression.
void common_settings(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + openssl_error_text());
}

bool is_ip_address(const std::string& host) {
  std::array<unsigned char, 16> address{};
  return inet_pton(AF_INET, host.c_str(), address.data()) == 1 ||
         inet_pton(AF_INET6, host.c_str(), address.data()) == 1;
}

}  // namespace

std::string openssl_error_text() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    if (!text.empty()) text += "; ";
    text += buffer.data();
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

std::shared_ptr<ClientTlsContext> make_client_tls_context(const config::TlsSettings& settings) {
  auto tls = std::make_shared<ClientTlsContext>();
  SSL_CTX* ctx = tls->context.native_handle();
  common_settings(ctx);
  // Every connection is new: no session cache or tickets (PostgreSQL disables them too).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, settings.cert_file.c_str()) != 1) {
    fail("tls.cert_file " + settings.cert_file + ": cannot load the certificate");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, settings.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("tls.key_file " + settings.key_file + ": cannot load the private key");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail("tls.key_file " + settings.key_file + " does not match tls.cert_file " +
         settings.cert_file);
  }
  if (!settings.client_ca_file.empty()) {
    // Clients are asked for a certificate from these CAs (as PostgreSQL does with ssl_ca_file).
    // One that does not verify fails the handshake; none at all is left to authentication.
    if (SSL_CTX_load_verify_locations(ctx, settings.client_ca_file.c_str(), nullptr) != 1) {
      fail("tls.client_ca_file " + settings.client_ca_file + ": cannot load the CA certificates");
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  if (X509* certificate = SSL_CTX_get0_certificate(ctx)) {
    tls->end_point_hash = tls_server_end_point(certificate);
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (X509_digest(certificate, EVP_sha256(), digest.data(), &size) == 1) {
      tls->fingerprint.assign(reinterpret_cast<const char*>(digest.data()), size);
    }
  }
  return tls;
}

std::optional<std::string> verified_peer_common_name(SSL* ssl) {
  if (ssl == nullptr) return std::nullopt;
  X509* certificate = SSL_get0_peer_certificate(ssl);
  if (certificate == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  const X509_NAME* subject = X509_get_subject_name(certificate);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return std::string();
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return std::string();
  std::string name(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return name;
}

bool verifies_certificate(const config::Endpoint& endpoint) {
  using config::SslMode;
  return endpoint.sslmode == SslMode::kVerifyCa || endpoint.sslmode == SslMode::kVerifyFull ||
         (endpoint.sslmode == SslMode::kRequire && !endpoint.sslrootcert.empty());
}

std::shared_ptr<ssl::context> make_server_tls_context(const config::Endpoint& endpoint,
                                                      std::string_view environment) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* ctx = context->native_handle();
  common_settings(ctx);
  SSL_CTX_set_alpn_protos(ctx, kAlpnWire, sizeof(kAlpnWire));
  ERR_clear_error();
  if (verifies_certificate(endpoint)) {
    const std::string key = std::string(environment) + ".sslrootcert";
    if (endpoint.sslrootcert == "system") {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) fail(key + ": no system trust store");
    } else if (SSL_CTX_load_verify_locations(ctx, endpoint.sslrootcert.c_str(), nullptr) != 1) {
      fail(key + " " + endpoint.sslrootcert + ": cannot load the CA certificate");
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!endpoint.sslcert.empty()) {
    // Presented when the server asks (pg_hba `cert`, clientcert=...), as libpq does.
    const std::string prefix = std::string(environment) + ".";
    if (SSL_CTX_use_certificate_chain_file(ctx, endpoint.sslcert.c_str()) != 1) {
      fail(prefix + "sslcert " + endpoint.sslcert + ": cannot load the client certificate");
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, endpoint.sslkey.c_str(), SSL_FILETYPE_PEM) != 1) {
      fail(prefix + "sslkey " + endpoint.sslkey + ": cannot load the private key");
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      fail(prefix + "sslkey " + endpoint.sslkey + " does not match " + prefix + "sslcert " +
           endpoint.sslcert);
    }
  }
  return context;
}

bool prepare_server_tls(SSL* ssl, const std::string& host, config::SslMode mode) {
  const bool ip = is_ip_address(host);
  // libpq sends SNI for host names, never for addresses.
  if (!ip && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) return false;
  if (mode != config::SslMode::kVerifyFull) return true;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (ip) return X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) == 1;
}

std::string tls_server_end_point(X509* certificate) {
  int digest_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(certificate), &digest_nid, nullptr) != 1) {
    return {};
  }
  const EVP_MD* digest = nullptr;
  if (digest_nid == NID_md5 || digest_nid == NID_sha1) {
    digest = EVP_sha256();
  } else {
    digest = EVP_get_digestbynid(digest_nid);
  }
  if (digest == nullptr) return {};
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int size = 0;
  if (X509_digest(certificate, digest, hash.data(), &size) != 1) return {};
  return std::string(reinterpret_cast<const char*>(hash.data()), size);
}

bool alpn_selected_postgresql(SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(ssl, &data, &size);
  return data != nullptr &&
         std::string_view(reinterpret_cast<const char*>(data), size) == kAlpnPostgresql;
}

std::optional<double> certificate_not_after(SSL_CTX* context) {
  X509* certificate = context ? SSL_CTX_get0_certificate(context) : nullptr;
  if (certificate == nullptr) return std::nullopt;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) != 1) return std::nullopt;
  return static_cast<double>(timegm(&tm));
}

}  // namespace pgflip::proxy
