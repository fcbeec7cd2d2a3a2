// Decoding and encoding of the untyped startup-phase packets.
#include "protocol/startup.hpp"

#include "protocol/wire.hpp"

namespace pgflip::protocol {
namespace {

constexpr std::uint32_t kMinStartupLength = 8;  // length word + code
constexpr std::uint32_t kCancelRequestLength = 16;

DecodeError malformed(std::string detail) {
  return DecodeError{ErrorCode::kMalformed, std::move(detail)};
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
std::variant<StartupMessage, DecodeError> parse_startup_message(std::uint32_t code,
                                                                std::string_view rest) {
  StartupMessage message;
  message.major = static_cast<std::uint16_t>(code >> 16);
  message.minor = static_cast<std::uint16_t>(code & 0xffff);
  if (message.major != 3) {
    return DecodeError{ErrorCode::kUnsupportedProtocol, std::to_string(message.major) + "." +
                                                            std::to_string(message.minor) +
                                                            ": only protocol 3 is supported"};
  }
  // name\0value\0 ... \0: the list ends at an empty name, which must be the last byte.
  WireReader reader(rest);
  for (;;) {
    const std::string_view name = reader.cstring();
    if (!reader.ok()) {
      return malformed("invalid startup packet layout: expected terminator as last byte");
    }
    if (name.empty()) break;
    const std::string_view value = reader.cstring();
    if (!reader.ok()) {
      return malformed("invalid startup packet layout: missing value for parameter \"" +
                       std::string(name) + "\"");
    }
    message.parameters.emplace_back(name, value);
  }
  if (!reader.at_end()) {
    return malformed("invalid startup packet layout: expected terminator as last byte");
  }
  const std::string* user = message.find("user");
  if (user == nullptr || user->empty()) {
    return malformed("no PostgreSQL user name specified in startup packet");
  }
  return message;
}

void encode_code_only(std::uint32_t code, std::string& out) {
  const std::size_t at = begin_packet(out);
  put_u32(out, code);
  finish_message(out, at);
}

}  // namespace

const std::string* StartupMessage::find(std::string_view key) const {
  for (auto it = parameters.rbegin(); it != parameters.rend(); ++it) {
    if (it->first == key) return &it->second;
  }
  return nullptr;
}

DecodeResult<StartupPacket> decode_startup(std::string_view buf, std::size_t max_size) {
  if (buf.size() < 4) return NeedMoreData{};
  WireReader header(buf.substr(0, 4));
  const std::uint32_t length = header.u32();
  if (length < kMinStartupLength) {
    return DecodeError{ErrorCode::kInvalidLength,
                       "invalid length of startup packet: " + std::to_string(length)};
  }
  if (length - 4 > max_size) {
    return DecodeError{ErrorCode::kMessageTooLarge,
                       "startup packet too large: " + std::to_string(length) + " bytes, limit " +
                           std::to_string(max_size + 4)};
  }
  if (buf.size() < length) return NeedMoreData{};

  WireReader reader(buf.substr(4, length - 4));
  const std::uint32_t code = reader.u32();
  switch (code) {
    case SSLRequest::kCode:
      if (length != kMinStartupLength) {
        return DecodeError{ErrorCode::kInvalidLength, "invalid length of SSLRequest"};
      }
      return Decoded<StartupPacket>{SSLRequest{}, length};
    case GSSENCRequest::kCode:
      if (length != kMinStartupLength) {
        return DecodeError{ErrorCode::kInvalidLength, "invalid length of GSSENCRequest"};
      }
      return Decoded<StartupPacket>{GSSENCRequest{}, length};
    case CancelRequest::kCode: {
      if (length != kCancelRequestLength) {
        return DecodeError{ErrorCode::kInvalidLength, "invalid length of CancelRequest"};
      }
      CancelRequest cancel{};
      cancel.process_id = reader.i32();
      cancel.secret_key = reader.i32();
      return Decoded<StartupPacket>{cancel, length};
    }
    default:
      break;
  }
  auto parsed = parse_startup_message(code, reader.rest());
  if (auto* error = std::get_if<DecodeError>(&parsed)) return std::move(*error);
  return Decoded<StartupPacket>{std::move(std::get<StartupMessage>(parsed)), length};
}

void encode(const StartupMessage& message, std::string& out) {
  const std::size_t at = begin_packet(out);
  put_u16(out, message.major);
  put_u16(out, message.minor);
  for (const auto& [name, value] : message.parameters) {
    // An empty name would end the list early; such a parameter cannot be sent.
    if (name.empty() || name.front() == '\0') continue;
    put_cstring(out, name);
    put_cstring(out, value);
  }
  out.push_back('\0');
  finish_message(out, at);
}

void encode(const SSLRequest& /*message*/, std::string& out) {
  encode_code_only(SSLRequest::kCode, out);
}

void encode(const GSSENCRequest& /*message*/, std::string& out) {
  encode_code_only(GSSENCRequest::kCode, out);
}

void encode(const CancelRequest& message, std::string& out) {
  const std::size_t at = begin_packet(out);
  put_u32(out, CancelRequest::kCode);
  put_i32(out, message.process_id);
  put_i32(out, message.secret_key);
  finish_message(out, at);
}

void encode(const StartupPacket& packet, std::string& out) {
  std::visit([&](const auto& message) { encode(message, out); }, packet);
}

}  // namespace pgflip::protocol
