// Client cancel keys: allocation from a CSPRNG and lookup by exact match.
#include "proxy/frontdoor/cancel_registry.hpp"

#include <openssl/rand.h>

#include <stdexcept>

namespace pgflip::proxy {

namespace {
std::int32_t random_positive_int32() {
  std::uint32_t value = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&value), sizeof value) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  // Process ids are positive; 0 is never used.
  return static_cast<std::int32_t>((value & 0x7fffffffU) | 1U);
}
}  // namespace

std::pair<std::int32_t, std::int32_t> CancelRegistry::allocate() {
  const std::int32_t secret = random_positive_int32();
  std::lock_guard lock(mutex_);
  for (;;) {
    const std::int32_t pid = random_positive_int32();
    if (entries_.try_emplace(pid, Entry{secret, std::nullopt}).second) return {pid, secret};
  }
}

void CancelRegistry::set_target(std::int32_t process_id, CancelTarget target) {
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(process_id); it != entries_.end()) {
    it->second.target = std::move(target);
  }
}

std::optional<CancelTarget> CancelRegistry::find(std::int32_t process_id,
                                                 std::int32_t secret_key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(process_id);
  if (it == entries_.end() || it->second.secret_key != secret_key) return std::nullopt;
  return it->second.target;
}

void CancelRegistry::release(std::int32_t process_id) {
  std::lock_guard lock(mutex_);
  entries_.erase(process_id);
}

std::size_t CancelRegistry::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace pgflip::proxy
