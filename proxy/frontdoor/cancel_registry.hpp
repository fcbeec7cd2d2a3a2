// Maps the BackendKeyData pgflip gives its clients to the server connection to cancel.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace pgflip::proxy {

/// Where a CancelRequest for one client must go: the server its session currently uses.
struct CancelTarget {
  std::string host;  // host name, address or Unix-socket directory
  std::uint16_t port = 0;
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
};

/// Thread-safe: sessions live on any worker, cancel requests arrive on any worker.
class CancelRegistry {
 public:
  /// A fresh (process id, secret) pair, unique among live sessions, from a CSPRNG.
  [[nodiscard]] std::pair<std::int32_t, std::int32_t> allocate();
  /// Points a client key at the server connection its session uses now.
  void set_target(std::int32_t process_id, CancelTarget target);
  /// Only an exact (process id, secret) match returns a target: a stale or guessed key
  /// must never cancel another client's query.
  [[nodiscard]] std::optional<CancelTarget> find(std::int32_t process_id,
                                                 std::int32_t secret_key) const;
  void release(std::int32_t process_id);
  [[nodiscard]] std::size_t size() const;

 private:
  struct Entry {
    std::int32_t secret_key;
    std::optional<CancelTarget> target;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::int32_t, Entry> entries_;
};

}  // namespace pgflip::proxy
