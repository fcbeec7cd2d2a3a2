// The admin socket's wire format: JSON lines, versioned.
#include "proxy/admin/admin_protocol.hpp"

namespace pgflip::proxy {

namespace json = boost::json;

std::variant<AdminRequest, std::string> parse_admin_request(std::string_view line) {
  if (line.size() > kMaxAdminRequestSize) return std::string("request too large");
  json::error_code ec;
  json::value value = json::parse(line, ec);
  if (ec) return "request is not valid JSON: " + ec.message();
  const json::object* object = value.if_object();
  if (!object) return std::string("request must be a JSON object");
  const json::value* version = object->if_contains("version");
  if (!version || !version->is_int64()) return std::string("request has no integer \"version\"");
  if (version->as_int64() != kAdminProtocolVersion) {
    return "unsupported admin protocol version " + std::to_string(version->as_int64()) +
           " (this pgflip speaks " + std::to_string(kAdminProtocolVersion) + ")";
  }
  const json::value* command = object->if_contains("command");
  if (!command || !command->is_string() || command->as_string().empty()) {
    return std::string("request has no \"command\" string");
  }
  AdminRequest request;
  request.command = std::string(command->as_string());
  if (const json::value* args = object->if_contains("args")) {
    if (!args->is_object()) return std::string("\"args\" must be an object");
    request.args = args->as_object();
  }
  return request;
}

std::string admin_request_line(std::string_view command, const json::object& args) {
  json::object object{{"version", kAdminProtocolVersion}, {"command", command}, {"args", args}};
  return json::serialize(object) + "\n";
}

std::string admin_event_line(std::string_view event, std::string_view text,
                             const json::value& data) {
  json::object object{
      {"version", kAdminProtocolVersion}, {"event", event}, {"text", text}, {"data", data}};
  return json::serialize(object) + "\n";
}

std::string admin_ok_line(const json::value& result, std::string_view text) {
  json::object object{
      {"version", kAdminProtocolVersion}, {"ok", true}, {"result", result}, {"text", text}};
  return json::serialize(object) + "\n";
}

std::string admin_error_line(std::string_view code, std::string_view message,
                             const json::value& result, std::string_view text) {
  json::object object{{"version", kAdminProtocolVersion},
                      {"ok", false},
                      {"error", json::object{{"code", code}, {"message", message}}},
                      {"result", result},
                      {"text", text.empty() ? message : text}};
  return json::serialize(object) + "\n";
}

}  // namespace pgflip::proxy
