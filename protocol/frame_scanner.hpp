// Incremental scanner over a stream of typed protocol messages: the proxy's hot path.
//
// The proxy forwards bytes in whole read-sized chunks. It only needs to know where
// each message starts and the contents of the few message types it watches
// (ReadyForQuery, ParameterStatus, Terminate, ...). The scanner walks the 5-byte
// headers across chunk boundaries and hands over the body of a watched message once
// it is complete; every other byte is skipped without being copied.
#pragma once

#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgflip::protocol {

enum class ScanStatus {
  kOk,               // the chunk was consumed
  kInvalidLength,    // a length field below 4
  kMessageTooLarge,  // a length field above the limit
};

class FrameScanner {
 public:
  explicit FrameScanner(std::size_t max_message_size) : max_message_size_(max_message_size) {}

  void watch(char type) { watched_.set(static_cast<unsigned char>(type)); }
  void set_max_message_size(std::size_t size) { max_message_size_ = size; }

  /// Scans the next chunk of the stream. Calls `on_message(type, body)` for every
  /// complete watched message, in stream order; `body` is valid only during the call.
  /// After an error the scanner must not be used again.
  template <class OnMessage>
  [[nodiscard]] ScanStatus scan(std::string_view chunk, OnMessage&& on_message) {
    while (!chunk.empty()) {
      if (body_left_ > 0) {
        const std::size_t take = std::min(body_left_, chunk.size());
        if (collecting_) body_.append(chunk.data(), take);
        body_left_ -= take;
        chunk.remove_prefix(take);
        if (body_left_ == 0 && collecting_) {
          collecting_ = false;
          on_message(type_, std::string_view(body_));
        }
        continue;
      }
      // At a header. Fast path: the whole header and a watched body in this chunk.
      if (header_have_ == 0 && chunk.size() >= 5) {
        type_ = chunk[0];
        const std::uint32_t length = read_u32(chunk.data() + 1);
        if (const ScanStatus s = check_length(length); s != ScanStatus::kOk) return s;
        const std::size_t body = length - 4;
        chunk.remove_prefix(5);
        if (watched_.test(static_cast<unsigned char>(type_))) {
          if (chunk.size() >= body) {
            on_message(type_, chunk.substr(0, body));
            chunk.remove_prefix(body);
            continue;
          }
          collecting_ = true;
          body_.clear();
        }
        body_left_ = body;
        if (body == 0 && collecting_) {
          collecting_ = false;
          on_message(type_, std::string_view{});
        }
        continue;
      }
      // Slow path: the header is split across chunks.
      const std::size_t take = std::min<std::size_t>(5 - header_have_, chunk.size());
      for (std::size_t i = 0; i < take; ++i) header_[header_have_ + i] = chunk[i];
      header_have_ += take;
      chunk.remove_prefix(take);
      if (header_have_ < 5) break;
      header_have_ = 0;
      type_ = header_[0];
      const std::uint32_t length = read_u32(header_.data() + 1);
      if (const ScanStatus s = check_length(length); s != ScanStatus::kOk) return s;
      body_left_ = length - 4;
      collecting_ = watched_.test(static_cast<unsigned char>(type_));
      body_.clear();
      if (body_left_ == 0 && collecting_) {
        collecting_ = false;
        on_message(type_, std::string_view{});
      }
    }
    return ScanStatus::kOk;
  }

  /// True when the bytes scanned so far end exactly at a message boundary.
  [[nodiscard]] bool at_boundary() const { return body_left_ == 0 && header_have_ == 0; }

 private:
  static std::uint32_t read_u32(const char* p) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
           std::uint32_t{u[3]};
  }
  [[nodiscard]] ScanStatus check_length(std::uint32_t length) const {
    if (length < 4) return ScanStatus::kInvalidLength;
    if (length - 4 > max_message_size_) return ScanStatus::kMessageTooLarge;
    return ScanStatus::kOk;
  }

  std::size_t max_message_size_;
  std::bitset<256> watched_;
  std::size_t body_left_ = 0;  // body bytes of the current message not yet seen
  std::array<char, 5> header_{};
  std::size_t header_have_ = 0;  // header bytes collected when a header spans chunks
  char type_ = 0;
  bool collecting_ = false;  // the current message is watched and spans chunks
  std::string body_;
};

}  // namespace pgflip::protocol
