// Big-endian field readers and writers over byte buffers, shared by the decoders and encoders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgflip::protocol {

/// Reads the fields of a message body front to back, never past its end. The first read
/// that does not fit puts the reader in a failed state for good: later reads return zero
/// values and empty views, so a decoder can read every field and check ok() once.
class WireReader {
 public:
  explicit WireReader(std::string_view buf) : buf_(buf) {}

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] bool at_end() const { return pos_ == buf_.size(); }
  [[nodiscard]] std::size_t remaining() const { return ok_ ? buf_.size() - pos_ : 0; }
  void fail() { ok_ = false; }

  [[nodiscard]] std::uint8_t u8() {
    if (!take(1)) return 0;
    return static_cast<std::uint8_t>(buf_[pos_ - 1]);
  }
  [[nodiscard]] std::uint16_t u16() {
    if (!take(2)) return 0;
    return static_cast<std::uint16_t>((byte(pos_ - 2) << 8) | byte(pos_ - 1));
  }
  [[nodiscard]] std::int16_t i16() { return static_cast<std::int16_t>(u16()); }
  [[nodiscard]] std::uint32_t u32() {
    if (!take(4)) return 0;
    return (std::uint32_t{byte(pos_ - 4)} << 24) | (std::uint32_t{byte(pos_ - 3)} << 16) |
           (std::uint32_t{byte(pos_ - 2)} << 8) | std::uint32_t{byte(pos_ - 1)};
  }
  [[nodiscard]] std::int32_t i32() { return static_cast<std::int32_t>(u32()); }

  /// The next `n` bytes.
  [[nodiscard]] std::string_view bytes(std::size_t n) {
    if (!take(n)) return {};
    return buf_.substr(pos_ - n, n);
  }

  /// A NUL-terminated string, without its NUL; fails if there is no NUL before the end.
  [[nodiscard]] std::string_view cstring() {
    if (!ok_) return {};
    const std::size_t nul = buf_.find('\0', pos_);
    if (nul == std::string_view::npos) {
      ok_ = false;
      return {};
    }
    const std::string_view s = buf_.substr(pos_, nul - pos_);
    pos_ = nul + 1;
    return s;
  }

  /// An Int32 length followed by that many bytes; length -1 is SQL NULL (nullopt).
  /// Any other negative length fails the reader.
  [[nodiscard]] std::optional<std::string_view> nullable_bytes() {
    const std::int32_t length = i32();
    if (!ok_) return std::nullopt;
    if (length == -1) return std::nullopt;
    if (length < 0) {
      ok_ = false;
      return std::nullopt;
    }
    return bytes(static_cast<std::size_t>(length));
  }

  /// Everything not read yet.
  [[nodiscard]] std::string_view rest() {
    if (!ok_) return {};
    const std::string_view s = buf_.substr(pos_);
    pos_ = buf_.size();
    return s;
  }

 private:
  bool take(std::size_t n) {
    if (!ok_ || buf_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  [[nodiscard]] unsigned byte(std::size_t i) const { return static_cast<unsigned char>(buf_[i]); }

  std::string_view buf_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

inline void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }

inline void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

inline void put_i16(std::string& out, std::int16_t v) {
  put_u16(out, static_cast<std::uint16_t>(v));
}

inline void put_u32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

inline void put_i32(std::string& out, std::int32_t v) {
  put_u32(out, static_cast<std::uint32_t>(v));
}

inline void put_bytes(std::string& out, std::string_view bytes) { out.append(bytes); }

/// Writes `s` as a protocol String. A NUL inside `s` would end the field early and turn
/// the rest into the following fields, so only the part before the first NUL is written.
inline void put_cstring(std::string& out, std::string_view s) {
  out.append(s.substr(0, s.find('\0')));
  out.push_back('\0');
}

/// Writes an Int32 length (-1 for nullopt) followed by the bytes.
inline void put_nullable_bytes(std::string& out, const std::optional<std::string>& bytes) {
  if (!bytes) {
    put_i32(out, -1);
    return;
  }
  put_i32(out, static_cast<std::int32_t>(bytes->size()));
  out.append(*bytes);
}

/// Starts a typed message: appends the type byte and a length placeholder. Returns the
/// offset of the length field, for finish_message().
[[nodiscard]] inline std::size_t begin_message(std::string& out, char type) {
  out.push_back(type);
  const std::size_t at = out.size();
  put_u32(out, 0);
  return at;
}

/// Starts an untyped (startup-phase) packet: appends a length placeholder only.
[[nodiscard]] inline std::size_t begin_packet(std::string& out) {
  const std::size_t at = out.size();
  put_u32(out, 0);
  return at;
}

/// Fills in the length field at `length_at` to cover everything appended since.
inline void finish_message(std::string& out, std::size_t length_at) {
  const auto length = static_cast<std::uint32_t>(out.size() - length_at);
  out[length_at] = static_cast<char>(length >> 24);
  out[length_at + 1] = static_cast<char>((length >> 16) & 0xff);
  out[length_at + 2] = static_cast<char>((length >> 8) & 0xff);
  out[length_at + 3] = static_cast<char>(length & 0xff);
}

}  // namespace pgflip::protocol
