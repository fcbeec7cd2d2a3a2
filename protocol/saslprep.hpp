// SASLprep (RFC 4013) of passwords, the way PostgreSQL applies it before SCRAM hashing.
#pragma once

#include <string>
#include <string_view>

namespace pgflip::protocol {

enum class SaslprepStatus {
  kSuccess,
  kInvalidUtf8,  // not UTF-8: PostgreSQL then hashes the raw bytes
  kProhibited,   // a prohibited or unassigned character, a bidi violation, or empty
};

struct SaslprepResult {
  SaslprepStatus status;
  std::string output;  // the prepared string when kSuccess, else empty
};

/// RFC 4013 with PostgreSQL's choices: pure ASCII passes unchanged; otherwise map (non-ASCII
/// spaces to U+0020, "commonly mapped to nothing" removed), NFKC-normalize, and reject
/// prohibited (RFC 3454 C.1.2-C.9) or unassigned (A.1) characters and bidi violations.
/// Like PostgreSQL, the prohibition and bidi checks look at the mapped string before
/// normalization.
[[nodiscard]] SaslprepResult saslprep(std::string_view input);

/// What PostgreSQL feeds to SCRAM's key derivation: the SASLprep'd password, or the raw
/// bytes when SASLprep fails.
[[nodiscard]] std::string scram_prepare_password(std::string_view password);

}  // namespace pgflip::protocol
