// Idle auth.query connections kept for the next lookup, per worker and per server login.
#include "proxy/upstream/lookup_pool.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace pgflip::proxy {
namespace {

const asio::execution_context* worker_of(const asio::any_io_executor& executor) {
  return &asio::query(executor, asio::execution::context);
}

void close(ServerStream& stream) {
  error_code ignored;
  stream.close(ignored);
}

/// Ends a healthy connection as a client should (Terminate, then close), so the server does
/// not log an unexpected EOF. Plain connections only: a TLS record cannot be written here.
void terminate(ServerStream& stream) {
  if (!stream.is_tls()) {
    static constexpr char kTerminate[] = {'X', 0, 0, 0, 4};
    error_code ignored;
    asio::write(stream.socket(), asio::buffer(kTerminate), ignored);
  }
  close(stream);
}

}  // namespace

std::optional<ServerStream> LookupPool::take(const asio::any_io_executor& executor,
                                             const std::string& key) {
  const auto* worker = worker_of(executor);
  const auto now = Clock::now();
  std::vector<ServerStream> stale;  // closed outside the lock
  std::optional<ServerStream> found;
  {
    std::lock_guard lock(mutex_);
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (it->worker != worker) {
        ++it;
        continue;
      }
      error_code ec;
      const bool expired = now - it->since > kMaxIdleTime;
      const bool unasked = !expired && it->key == key && it->stream->available(ec) > 0;
      if (expired || unasked || ec) {
        stale.push_back(std::move(*it->stream));
        it = idle_.erase(it);
        continue;
      }
      if (!found && it->key == key) {
        found = std::move(it->stream);
        it = idle_.erase(it);
        continue;
      }
      ++it;
    }
  }
  for (auto& stream : stale) close(stream);
  return found;
}

void LookupPool::give_back(const asio::any_io_executor& executor, const std::string& key,
                           ServerStream stream) {
  const auto* worker = worker_of(executor);
  {
    std::lock_guard lock(mutex_);
    const auto kept = std::count_if(idle_.begin(), idle_.end(), [&](const Idle& idle) {
      return idle.worker == worker && idle.key == key;
    });
    if (static_cast<std::size_t>(kept) < kMaxIdle) {
      idle_.push_back(Idle{worker, key, std::move(stream), Clock::now()});
      return;
    }
  }
  terminate(stream);
}

std::size_t LookupPool::size() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

void LookupPool::clear() {
  std::vector<Idle> idle;
  {
    std::lock_guard lock(mutex_);
    idle.swap(idle_);
  }
  for (auto& entry : idle) terminate(*entry.stream);
}

}  // namespace pgflip::proxy
