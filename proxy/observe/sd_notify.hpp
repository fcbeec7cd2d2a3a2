// systemd's service notifications (sd_notify(3)) without libsystemd: datagrams to $NOTIFY_SOCKET.
#pragma once

#include <string>
#include <string_view>

namespace pgflip::proxy::systemd {

/// Sends `state` (newline-separated assignments: "READY=1", "STATUS=...") to the service
/// manager named by $NOTIFY_SOCKET: a socket path, or "@name" for the abstract namespace.
/// False when there is none (not started by systemd with Type=notify) or the send failed;
/// never fatal, and it never blocks.
bool notify(std::string_view state);

/// "RELOADING=1" with the MONOTONIC_USEC= that Type=notify-reload (systemd 253) asks for.
[[nodiscard]] std::string reloading_state();

}  // namespace pgflip::proxy::systemd
