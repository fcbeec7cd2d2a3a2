// Connection counting for server.max_client_conn and the per-user and per-database limits.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace pgflip::proxy {

/// Counts client connections: all of them, and the logged-in ones per user and database.
/// Thread-safe.
class ConnectionLimits {
 public:
  /// Releases one logged-in connection's per-user and per-database counts when destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept { *this = std::move(other); }
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { release(); }
    void release();

   private:
    friend class ConnectionLimits;
    ConnectionLimits* owner_ = nullptr;
    std::string user_;
    std::string database_;
  };

  /// Which limit refused a login.
  enum class Refusal { kNone, kUser, kDatabase };

  /// Counts a new connection unless `max` are open already.
  [[nodiscard]] bool try_add_client(std::uint32_t max);
  void remove_client();
  [[nodiscard]] std::uint32_t clients() const { return clients_.load(); }

  /// Counts a logged-in connection of `user` to `database` into `ticket`, unless either is
  /// at its limit (0 = no limit).
  [[nodiscard]] Refusal try_login(const std::string& user, const std::string& database,
                                  std::uint32_t max_per_user, std::uint32_t max_per_database,
                                  Ticket& ticket);
  [[nodiscard]] std::uint32_t user_count(const std::string& user) const;
  [[nodiscard]] std::uint32_t database_count(const std::string& database) const;

 private:
  void logout(const std::string& user, const std::string& database);

  std::atomic<std::uint32_t> clients_{0};
  mutable std::mutex mutex_;
  std::map<std::string, std::uint32_t, std::less<>> per_user_;
  std::map<std::string, std::uint32_t, std::less<>> per_database_;
};

}  // namespace pgflip::proxy
