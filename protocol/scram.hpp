// SCRAM-SHA-256 (RFC 5802/7677) client and server as PostgreSQL uses them, and their helpers.
//
// https://www.postgresql.org/docs/current/sasl-authentication.html
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pgflip::protocol {

using ScramKey = std::array<std::uint8_t, 32>;

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";
/// The only channel binding type PostgreSQL supports (RFC 5929).
inline constexpr std::string_view kTlsServerEndPoint = "tls-server-end-point";

enum class ScramErrorKind {
  kProtocol,              // malformed or unexpected message: SQLSTATE 08P01
  kAuthenticationFailed,  // wrong proof or signature: SQLSTATE 28P01
};

struct ScramError {
  std::string message;
  ScramErrorKind kind = ScramErrorKind::kProtocol;
};

// ---------------------------------------------------------------------------
// Helpers.

/// Standard base64 with padding.
[[nodiscard]] std::string base64_encode(std::string_view bytes);
/// Strict standard base64: padded to a multiple of 4, no whitespace; nullopt otherwise.
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);

/// SaltedPassword := Hi(SASLprep(password), salt, i), i.e. PBKDF2-HMAC-SHA-256.
[[nodiscard]] ScramKey scram_salted_password(std::string_view password, std::string_view salt,
                                             int iterations);
/// ClientKey := HMAC(SaltedPassword, "Client Key")
[[nodiscard]] ScramKey scram_client_key(const ScramKey& salted_password);
/// ServerKey := HMAC(SaltedPassword, "Server Key")
[[nodiscard]] ScramKey scram_server_key(const ScramKey& salted_password);
/// StoredKey := H(ClientKey)
[[nodiscard]] ScramKey scram_stored_key(const ScramKey& client_key);
/// HMAC-SHA-256.
[[nodiscard]] ScramKey hmac_sha256(std::string_view key, std::string_view data);

// ---------------------------------------------------------------------------
// Client.

/// One SCRAM-SHA-256 exchange from the client side:
///   client_first_message() -> SASLInitialResponse data
///   handle_server_first(AuthenticationSASLContinue data) -> SASLResponse data
///   verify_server_final(AuthenticationSASLFinal data)
/// Crypto failures inside OpenSSL (not caused by input) throw std::runtime_error.
class ScramSha256Client {
 public:
  /// An empty nonce draws 18 random bytes (base64). The password is SASLprep'd as
  /// PostgreSQL does (raw bytes if that fails).
  explicit ScramSha256Client(const std::string& password, std::string client_nonce = {});

  /// A client that already knows ClientKey and ServerKey (SCRAM pass-through): it proves
  /// knowledge of the password without having it. The server's salt and iteration count
  /// are not used.
  static ScramSha256Client from_keys(ScramKey client_key, ScramKey server_key,
                                     std::string client_nonce = {});

  /// The user name sent as "n=". PostgreSQL ignores it (it uses the startup packet's user)
  /// and libpq sends it empty, which is the default.
  void set_username(std::string username);

  /// Binds the exchange to the TLS channel (SCRAM-SHA-256-PLUS, gs2 flag "p="): `cbind_data`
  /// is the tls-server-end-point hash of the server certificate.
  void set_channel_binding(std::string cbind_type, std::string cbind_data);

  /// The client could bind but the server did not offer SCRAM-SHA-256-PLUS (gs2 flag "y"),
  /// so a server that does support binding can detect a downgrade.
  void set_channel_binding_supported();

  /// The mechanism to name in SASLInitialResponse.
  [[nodiscard]] std::string_view mechanism() const;

  [[nodiscard]] std::string client_first_message() const;

  /// Returns the client-final-message, or why the server-first-message is unacceptable.
  [[nodiscard]] std::variant<std::string, ScramError> handle_server_first(
      std::string_view server_first);

  /// nullopt when the server proved it knows the password (or its ServerKey).
  [[nodiscard]] std::optional<ScramError> verify_server_final(std::string_view server_final);

  /// The keys derived during handle_server_first() (or given to from_keys()).
  [[nodiscard]] const ScramKey& client_key() const { return client_key_; }
  [[nodiscard]] const ScramKey& server_key() const { return server_key_; }

 private:
  enum class State {
    kInitial,    // client-first not answered yet: waits for server-first
    kFinalSent,  // client-final sent: waits for server-final
    kDone,       // server verified
    kFailed,     // any error; the exchange cannot continue
  };
  enum class Binding { kNone, kSupported, kUsed };

  ScramSha256Client() = default;
  [[nodiscard]] std::string gs2_header() const;
  [[nodiscard]] std::string client_first_bare() const;

  std::string password_;  // SASLprep'd
  bool have_keys_ = false;
  std::string nonce_;
  std::string username_;
  Binding binding_ = Binding::kNone;
  std::string cbind_type_;
  std::string cbind_data_;
  State state_ = State::kInitial;
  ScramKey client_key_{};
  ScramKey server_key_{};
  ScramKey expected_server_signature_{};
};

// ---------------------------------------------------------------------------
// Server.

/// What PostgreSQL stores in pg_authid.rolpassword for a SCRAM password.
struct ScramSecret {
  int iterations = 0;
  std::string salt;  // raw bytes (base64 in the text form)
  ScramKey stored_key{};
  ScramKey server_key{};
  bool operator==(const ScramSecret&) const = default;
};

/// Parses "SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>".
[[nodiscard]] std::optional<ScramSecret> parse_scram_secret(std::string_view text);
/// The text form parse_scram_secret() reads.
[[nodiscard]] std::string format_scram_secret(const ScramSecret& secret);
/// A secret for `password`; an empty salt draws 16 random bytes (as PostgreSQL).
[[nodiscard]] ScramSecret make_scram_secret(std::string_view password, std::string_view salt = {},
                                            int iterations = 4096);

/// One SCRAM-SHA-256 exchange from the server side, checking a client against a stored
/// secret:
///   mechanisms() -> AuthenticationSASL
///   handle_client_first(SASLInitialResponse) -> AuthenticationSASLContinue data
///   handle_client_final(SASLResponse data) -> AuthenticationSASLFinal data
/// After success, recovered_client_key() is the client's ClientKey (ClientProof XOR
/// ClientSignature), enough to log in to a server with the same secret on its behalf.
class ScramSha256Server {
 public:
  /// An empty nonce draws 18 random bytes (base64) for the server's part of the nonce.
  explicit ScramSha256Server(ScramSecret secret, std::string server_nonce = {});

  /// Offers SCRAM-SHA-256-PLUS over TLS: `cbind_data` is the tls-server-end-point hash of
  /// our certificate. Without it only SCRAM-SHA-256 is offered.
  void set_channel_binding(std::string cbind_type, std::string cbind_data);

  /// Mechanism names for AuthenticationSASL, preferred first.
  [[nodiscard]] std::vector<std::string> mechanisms() const;

  /// Returns the server-first-message, or why the client's choice or message is rejected.
  [[nodiscard]] std::variant<std::string, ScramError> handle_client_first(
      std::string_view mechanism, std::string_view client_first);

  /// Returns the server-final-message ("v=..."), or an error; a wrong proof is
  /// ScramErrorKind::kAuthenticationFailed.
  [[nodiscard]] std::variant<std::string, ScramError> handle_client_final(
      std::string_view client_final);

  [[nodiscard]] bool authenticated() const { return state_ == State::kDone; }
  /// Set once the client's proof was verified.
  [[nodiscard]] const std::optional<ScramKey>& recovered_client_key() const { return client_key_; }
  /// The "n=" user name of client-first (informational: PostgreSQL ignores it).
  [[nodiscard]] const std::string& username() const { return username_; }

 private:
  enum class State {
    kInitial,    // waits for client-first
    kFirstSent,  // server-first sent: waits for client-final
    kDone,       // client verified
    kFailed,     // any error
  };

  ScramSecret secret_;
  std::string server_nonce_;
  std::string cbind_type_;
  std::string cbind_data_;
  State state_ = State::kInitial;
  std::string gs2_header_;
  std::string cbind_type_used_;  // non-empty when the client chose "p="
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  std::string username_;
  std::optional<ScramKey> client_key_;
};

}  // namespace pgflip::protocol
