// TLS contexts for both sides (clients to pgflip, pgflip to servers) and channel-binding data.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "proxy/base/stream.hpp"

namespace pgflip::proxy {

/// The ALPN protocol name PostgreSQL 17 uses; required for direct TLS.
inline constexpr std::string_view kAlpnPostgresql = "postgresql";

/// TLS towards clients: the context with pgflip's certificate and that certificate's
/// tls-server-end-point hash for SCRAM-SHA-256-PLUS.
struct ClientTlsContext {
  ssl::context context{ssl::context::tls_server};
  std::string end_point_hash;
  /// SHA-256 of the certificate (DER): tells a renewed certificate at the same path apart.
  std::string fingerprint;
};

/// Loads tls.cert_file and tls.key_file: TLS 1.2 or newer, no renegotiation, ALPN
/// "postgresql" (a client offering only other protocols is refused); with
/// tls.client_ca_file, asks clients for a certificate from those CAs. Throws
/// std::runtime_error naming the file and OpenSSL's reason.
[[nodiscard]] std::shared_ptr<ClientTlsContext> make_client_tls_context(
    const config::TlsSettings& settings);

/// TLS towards one server: TLS 1.2 or newer, ALPN "postgresql", certificate checks as
/// `endpoint.sslmode` and `endpoint.sslrootcert` ask (like libpq), and the client certificate
/// `endpoint.sslcert`/`sslkey` if set. `environment` names it in errors. Throws
/// std::runtime_error when a file cannot be loaded or the key does not match.
[[nodiscard]] std::shared_ptr<ssl::context> make_server_tls_context(
    const config::Endpoint& endpoint, std::string_view environment);

/// Whether `endpoint`'s certificate is checked against a CA (verify-ca, verify-full, or
/// require with a root certificate, as libpq).
[[nodiscard]] bool verifies_certificate(const config::Endpoint& endpoint);

/// Per connection to a server: SNI for host names (as libpq) and, for verify-full, the name
/// or IP address the certificate must carry. False if OpenSSL refuses the settings.
[[nodiscard]] bool prepare_server_tls(SSL* ssl, const std::string& host, config::SslMode mode);

/// RFC 5929 tls-server-end-point: the hash of the DER certificate with its signature's hash
/// algorithm (SHA-256 when that is MD5 or SHA-1), as PostgreSQL computes it. Empty when the
/// algorithm cannot be determined (e.g. Ed25519): then no channel binding is offered.
[[nodiscard]] std::string tls_server_end_point(X509* certificate);

/// The common name of the client certificate verified in the handshake on `ssl`; nullopt when
/// the client sent none (or it did not verify). A name with a NUL byte in it is returned
/// whole, so it never equals a role name.
[[nodiscard]] std::optional<std::string> verified_peer_common_name(SSL* ssl);

/// Whether the handshake on `ssl` selected ALPN "postgresql".
[[nodiscard]] bool alpn_selected_postgresql(SSL* ssl);

/// OpenSSL's reason for the last failure on this thread, for logs; clears the error queue.
[[nodiscard]] std::string openssl_error_text();

/// The notAfter of the certificate `context` presents, as Unix time; nullopt without one.
[[nodiscard]] std::optional<double> certificate_not_after(SSL_CTX* context);

}  // namespace pgflip::proxy
