// The admin socket's wire format: one JSON request line in, JSON event lines and one result line
// out.
//
//   request: {"version":1,"command":"replication status","args":{...}}
//   event:   {"version":1,"event":"progress","text":"...","data":{...}}   (zero or more)
//   result:  {"version":1,"ok":true,"result":{...},"text":"..."}
//            {"version":1,"ok":false,"error":{"code":"...","message":"..."},"text":"..."}
//
// "text" is the human rendering pgflipctl prints; "result"/"data" are for machines.
#pragma once

#include <boost/json.hpp>

#include <string>
#include <string_view>
#include <variant>

namespace pgflip::proxy {

inline constexpr int kAdminProtocolVersion = 1;
/// A request line longer than this is refused: requests are small.
inline constexpr std::size_t kMaxAdminRequestSize = std::size_t{64} * 1024;

struct AdminRequest {
  std::string command;
  boost::json::object args;
};

/// Parses one request line (without its newline). Returns the reason on error.
[[nodiscard]] std::variant<AdminRequest, std::string> parse_admin_request(std::string_view line);

[[nodiscard]] std::string admin_request_line(std::string_view command,
                                             const boost::json::object& args);
[[nodiscard]] std::string admin_event_line(std::string_view event, std::string_view text,
                                           const boost::json::value& data);
[[nodiscard]] std::string admin_ok_line(const boost::json::value& result, std::string_view text);
[[nodiscard]] std::string admin_error_line(std::string_view code, std::string_view message,
                                           const boost::json::value& result = nullptr,
                                           std::string_view text = {});

}  // namespace pgflip::proxy
