// The admin console's sessions: a client logged in to admin.console_database talks to pgflip
// itself. Its queries are console commands (console.hpp) run through the same admin command
// table as the admin socket, on a thread of their own so that a blocking command (libpq, a
// switchover) never stalls the worker.
#pragma once

#include <string>
#include <string_view>

#include "proxy/admin/admin_server.hpp"
#include "proxy/admin/console.hpp"
#include "proxy/session/console_port.hpp"

namespace pgflip::proxy {

class ConsoleService final : public ConsolePort {
 public:
  explicit ConsoleService(AdminServer& admin) : admin_(admin) {}
  awaitable<std::string> serve(ConsoleClient& client) override;

 private:
  awaitable<void> run_query(ConsoleClient& client, std::string_view text);
  awaitable<AdminReply> call(ConsoleClient& client, const console::Command& command,
                             std::string& out);

  AdminServer& admin_;
};

}  // namespace pgflip::proxy
