// Connection counting for server.max_client_conn and the per-user and per-database limits.
#include "proxy/frontdoor/limits.hpp"

#include <utility>

namespace pgflip::proxy {

ConnectionLimits::Ticket& ConnectionLimits::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    user_ = std::move(other.user_);
    database_ = std::move(other.database_);
  }
  return *this;
}

void ConnectionLimits::Ticket::release() {
  if (owner_ != nullptr) owner_->logout(user_, database_);
  owner_ = nullptr;
}

bool ConnectionLimits::try_add_client(std::uint32_t max) {
  std::uint32_t current = clients_.load();
  do {
    if (current >= max) return false;
  } while (!clients_.compare_exchange_weak(current, current + 1));
  return true;
}

void ConnectionLimits::remove_client() { --clients_; }

ConnectionLimits::Refusal ConnectionLimits::try_login(const std::string& user,
                                                      const std::string& database,
                                                      std::uint32_t max_per_user,
                                                      std::uint32_t max_per_database,
                                                      Ticket& ticket) {
  ticket.release();  // before locking: releasing takes the lock too
  std::lock_guard lock(mutex_);
  auto& users = per_user_[user];
  auto& databases = per_database_[database];
  Refusal refusal = Refusal::kNone;
  if (max_per_user != 0 && users >= max_per_user) {
    refusal = Refusal::kUser;
  } else if (max_per_database != 0 && databases >= max_per_database) {
    refusal = Refusal::kDatabase;
  }
  if (refusal != Refusal::kNone) {
    // Do not keep entries for names that never got in (a prober could grow the maps).
    if (users == 0) per_user_.erase(user);
    if (databases == 0) per_database_.erase(database);
    return refusal;
  }
  ++users;
  ++databases;
  ticket.owner_ = this;
  ticket.user_ = user;
  ticket.database_ = database;
  return Refusal::kNone;
}

void ConnectionLimits::logout(const std::string& user, const std::string& database) {
  std::lock_guard lock(mutex_);
  if (auto found = per_user_.find(user); found != per_user_.end() && --found->second == 0) {
    per_user_.erase(found);
  }
  if (auto found = per_database_.find(database);
      found != per_database_.end() && --found->second == 0) {
    per_database_.erase(found);
  }
}

std::uint32_t ConnectionLimits::user_count(const std::string& user) const {
  std::lock_guard lock(mutex_);
  const auto found = per_user_.find(user);
  return found == per_user_.end() ? 0 : found->second;
}

std::uint32_t ConnectionLimits::database_count(const std::string& database) const {
  std::lock_guard lock(mutex_);
  const auto found = per_database_.find(database);
  return found == per_database_.end() ? 0 : found->second;
}

}  // namespace pgflip::proxy
