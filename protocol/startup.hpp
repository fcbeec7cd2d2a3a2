// Untyped start-up packets: StartupMessage, SSLRequest, GSSENCRequest and CancelRequest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/codec.hpp"

namespace pgflip::protocol {

/// Protocol version 3.x and the connection parameters (user, database, options, GUCs...).
struct StartupMessage {
  std::uint16_t major = 3;
  std::uint16_t minor = 0;
  std::vector<std::pair<std::string, std::string>> parameters;  // in wire order

  /// The value of parameter `key`, or nullptr. If a name repeats, the last one wins, as
  /// in PostgreSQL.
  [[nodiscard]] const std::string* find(std::string_view key) const;

  bool operator==(const StartupMessage&) const = default;
};

/// Asks whether the server will speak TLS; answered with a single byte 'S' or 'N'.
struct SSLRequest {
  static constexpr std::uint32_t kCode = 80877103;  // 1234.5679
  bool operator==(const SSLRequest&) const = default;
};

/// Asks whether the server will speak GSSAPI encryption; answered 'G' or 'N'.
struct GSSENCRequest {
  static constexpr std::uint32_t kCode = 80877104;  // 1234.5680
  bool operator==(const GSSENCRequest&) const = default;
};

/// Sent on a new connection to cancel the query running in another one (protocol 3.0
/// form, with a 4-byte key).
struct CancelRequest {
  static constexpr std::uint32_t kCode = 80877102;  // 1234.5678
  std::int32_t process_id;
  std::int32_t secret_key;
  bool operator==(const CancelRequest&) const = default;
};

using StartupPacket = std::variant<StartupMessage, SSLRequest, GSSENCRequest, CancelRequest>;

/// The largest startup packet body (without its length word) PostgreSQL accepts.
inline constexpr std::size_t kMaxStartupPacketSize = 10000;

/// Decodes the untyped packet at the front of `buf`: Int32 length (including itself),
/// Int32 code, then the rest. Errors: a length below 8 (kInvalidLength) or a body larger
/// than `max_size` (kMessageTooLarge), both reported as soon as the length is readable;
/// SSLRequest/GSSENCRequest not exactly 8 bytes or CancelRequest not exactly 16
/// (kInvalidLength); a protocol major version other than 3 (kUnsupportedProtocol; minor
/// versions above 0 are accepted, the proxy answers NegotiateProtocolVersion); a bad
/// parameter list or no (or an empty) "user" (kMalformed).
/// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
[[nodiscard]] DecodeResult<StartupPacket> decode_startup(
    std::string_view buf, std::size_t max_size = kMaxStartupPacketSize);

void encode(const StartupMessage& message, std::string& out);
void encode(const SSLRequest& message, std::string& out);
void encode(const GSSENCRequest& message, std::string& out);
void encode(const CancelRequest& message, std::string& out);
void encode(const StartupPacket& packet, std::string& out);

}  // namespace pgflip::protocol
