// Decoders and encoders for the typed frontend and backend messages of protocol 3.0.
#include "protocol/messages.hpp"

#include "protocol/wire.hpp"

namespace pgflip::protocol {
namespace {

using Fields = std::vector<std::pair<char, std::string>>;

// Int16 counts are read unsigned, as PostgreSQL (pq_getmsgint) and libpq (pqGetInt) do:
// a Bind may carry up to 65535 parameters. Each counted item takes at least
// `min_item_size` bytes, so a count the body cannot hold fails before anything is
// allocated for it.
std::size_t read_count16(WireReader& r, std::size_t min_item_size) {
  const std::size_t count = r.u16();
  if (count * min_item_size > r.remaining()) {
    r.fail();
    return 0;
  }
  return count;
}

void read_formats(WireReader& r, std::vector<std::int16_t>& formats) {
  const std::size_t count = read_count16(r, 2);
  formats.reserve(count);
  for (std::size_t i = 0; i < count && r.ok(); ++i) formats.push_back(r.i16());
}

void read_values(WireReader& r, std::vector<std::optional<std::string>>& values) {
  const std::size_t count = read_count16(r, 4);
  values.reserve(count);
  for (std::size_t i = 0; i < count && r.ok(); ++i) {
    const auto value = r.nullable_bytes();
    if (value) {
      values.emplace_back(std::string(*value));
    } else {
      values.emplace_back(std::nullopt);
    }
  }
}

// Format codes: none (all text), one (for all values), or one per value.
bool formats_match(std::size_t formats, std::size_t values) {
  return formats == 0 || formats == 1 || formats == values;
}

std::string read_string(WireReader& r) { return std::string(r.cstring()); }

bool read_fields(WireReader& r, Fields& fields) {
  for (;;) {
    const auto code = static_cast<char>(r.u8());
    if (!r.ok()) return false;
    if (code == '\0') return true;
    std::string value = read_string(r);
    if (!r.ok()) return false;
    fields.emplace_back(code, std::move(value));
  }
}

// ---------------------------------------------------------------------------
// Body readers: each reads one message format; the caller checks ok() and at_end().
// https://www.postgresql.org/docs/current/protocol-message-formats.html

bool read_body(WireReader& r, CopyData& m) {
  m.data = std::string(r.rest());
  return true;
}

bool read_body(WireReader& /*r*/, CopyDone& /*m*/) { return true; }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND
bool read_body(WireReader& r, Bind& m) {
  m.portal = read_string(r);
  m.statement = read_string(r);
  read_formats(r, m.parameter_formats);
  read_values(r, m.parameters);
  read_formats(r, m.result_formats);
  return formats_match(m.parameter_formats.size(), m.parameters.size());
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSE
bool read_body(WireReader& r, Close& m) {
  m.target = static_cast<char>(r.u8());
  m.name = read_string(r);
  return m.target == 'S' || m.target == 'P';
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYFAIL
bool read_body(WireReader& r, CopyFail& m) {
  m.message = read_string(r);
  return true;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE
bool read_body(WireReader& r, Describe& m) {
  m.target = static_cast<char>(r.u8());
  m.name = read_string(r);
  return m.target == 'S' || m.target == 'P';
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EXECUTE
bool read_body(WireReader& r, Execute& m) {
  m.portal = read_string(r);
  m.max_rows = r.i32();
  return true;
}

bool read_body(WireReader& /*r*/, Flush& /*m*/) { return true; }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FUNCTIONCALL
bool read_body(WireReader& r, FunctionCall& m) {
  m.function = r.u32();
  read_formats(r, m.argument_formats);
  read_values(r, m.arguments);
  m.result_format = r.i16();
  return formats_match(m.argument_formats.size(), m.arguments.size());
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE
bool read_body(WireReader& r, Parse& m) {
  m.name = read_string(r);
  m.query = read_string(r);
  const std::size_t count = read_count16(r, 4);
  m.parameter_types.reserve(count);
  for (std::size_t i = 0; i < count && r.ok(); ++i) m.parameter_types.push_back(r.u32());
  return true;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE
bool read_body(WireReader& r, PasswordMessage& m) {
  m.data = std::string(r.rest());
  return true;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-QUERY
bool read_body(WireReader& r, Query& m) {
  m.query = read_string(r);
  return true;
}

bool read_body(WireReader& /*r*/, Sync& /*m*/) { return true; }
bool read_body(WireReader& /*r*/, Terminate& /*m*/) { return true; }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK
// (and the AuthenticationXXX entries after it)
bool read_body(WireReader& r, Authentication& m) {
  m.code = r.i32();
  m.data = std::string(r.rest());
  if (!r.ok()) return false;
  switch (m.code) {
    case Authentication::kOk:
    case Authentication::kKerberosV5:
    case Authentication::kCleartextPassword:
    case Authentication::kGSS:
    case Authentication::kSSPI:
      return m.data.empty();
    case Authentication::kMD5Password:
      return m.data.size() == 4;
    case Authentication::kSASL:
      return sasl_mechanisms(m.data).has_value();
    default:
      return true;  // continuations carry opaque data; unknown codes pass through
  }
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA
bool read_body(WireReader& r, BackendKeyData& m) {
  m.process_id = r.i32();
  m.secret_key = r.i32();
  return true;
}

bool read_body(WireReader& /*r*/, BindComplete& /*m*/) { return true; }
bool read_body(WireReader& /*r*/, CloseComplete& /*m*/) { return true; }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
bool read_body(WireReader& r, CommandComplete& m) {
  m.tag = read_string(r);
  return true;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYINRESPONSE
// (CopyOutResponse and CopyBothResponse have the same layout)
template <class CopyResponse>
bool read_copy_response(WireReader& r, CopyResponse& m) {
  m.format = static_cast<std::int8_t>(r.u8());
  read_formats(r, m.column_formats);
  return true;
}

bool read_body(WireReader& r, CopyInResponse& m) { return read_copy_response(r, m); }
bool read_body(WireReader& r, CopyOutResponse& m) { return read_copy_response(r, m); }
bool read_body(WireReader& r, CopyBothResponse& m) { return read_copy_response(r, m); }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DATAROW
bool read_body(WireReader& r, DataRow& m) {
  read_values(r, m.columns);
  return true;
}

bool read_body(WireReader& /*r*/, EmptyQueryResponse& /*m*/) { return true; }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE
bool read_body(WireReader& r, ErrorResponse& m) { return read_fields(r, m.fields); }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTICERESPONSE
bool read_body(WireReader& r, NoticeResponse& m) { return read_fields(r, m.fields); }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FUNCTIONCALLRESPONSE
bool read_body(WireReader& r, FunctionCallResponse& m) {
  if (const auto value = r.nullable_bytes()) m.result = std::string(*value);
  return true;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION
bool read_body(WireReader& r, NegotiateProtocolVersion& m) {
  const std::uint32_t version = r.u32();
  const std::uint32_t major = version >> 16;
  if (major != 0 && major != 3) return false;
  m.newest_minor = static_cast<std::int32_t>(version & 0xffff);
  const std::int32_t count = r.i32();
  if (count < 0 || static_cast<std::size_t>(count) > r.remaining()) return false;
  m.unrecognized_options.reserve(static_cast<std::size_t>(count));
  for (std::int32_t i = 0; i < count && r.ok(); ++i)
    m.unrecognized_options.push_back(read_string(r));
  return true;
}

bool read_body(WireReader& /*r*/, NoData& /*m*/) { return true; }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTIFICATIONRESPONSE
bool read_body(WireReader& r, NotificationResponse& m) {
  m.process_id = r.i32();
  m.channel = read_string(r);
  m.payload = read_string(r);
  return true;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERDESCRIPTION
bool read_body(WireReader& r, ParameterDescription& m) {
  const std::size_t count = read_count16(r, 4);
  m.parameter_types.reserve(count);
  for (std::size_t i = 0; i < count && r.ok(); ++i) m.parameter_types.push_back(r.u32());
  return true;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS
bool read_body(WireReader& r, ParameterStatus& m) {
  m.name = read_string(r);
  m.value = read_string(r);
  return true;
}

bool read_body(WireReader& /*r*/, ParseComplete& /*m*/) { return true; }
bool read_body(WireReader& /*r*/, PortalSuspended& /*m*/) { return true; }

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY
bool read_body(WireReader& r, ReadyForQuery& m) {
  m.status = static_cast<char>(r.u8());
  return m.status == ReadyForQuery::kIdle || m.status == ReadyForQuery::kInTransaction ||
         m.status == ReadyForQuery::kFailedTransaction;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
bool read_body(WireReader& r, RowDescription& m) {
  constexpr std::size_t kMinFieldSize = 1 + 4 + 2 + 4 + 2 + 4 + 2;  // empty name
  const std::size_t count = read_count16(r, kMinFieldSize);
  m.fields.reserve(count);
  for (std::size_t i = 0; i < count && r.ok(); ++i) {
    FieldDescription f;
    f.name = read_string(r);
    f.table = r.u32();
    f.column = r.i16();
    f.type = r.u32();
    f.type_size = r.i16();
    f.type_modifier = r.i32();
    f.format = r.i16();
    m.fields.push_back(std::move(f));
  }
  return true;
}

template <class Msg, class Variant>
std::variant<Variant, DecodeError> parse_as(std::string_view body, std::string_view name) {
  WireReader reader(body);
  Msg message{};
  const bool valid = read_body(reader, message);
  if (!valid || !reader.ok() || !reader.at_end()) {
    return DecodeError{ErrorCode::kMalformed, "malformed " + std::string(name) + " message (" +
                                                  std::to_string(body.size()) + " bytes)"};
  }
  return Variant{std::move(message)};
}

template <class Variant, class ParseBody>
DecodeResult<Variant> decode_typed(std::string_view buf, std::size_t max_message_size,
                                   ParseBody&& parse) {
  auto header = decode_header(buf, max_message_size);
  if (auto* error = std::get_if<DecodeError>(&header)) return std::move(*error);
  if (std::holds_alternative<NeedMoreData>(header)) return NeedMoreData{};
  const Header h = std::get<Decoded<Header>>(header).message;
  if (buf.size() < h.message_size()) return NeedMoreData{};
  auto parsed = parse(h.type, buf.substr(kHeaderSize, h.body_size()));
  if (auto* error = std::get_if<DecodeError>(&parsed)) return std::move(*error);
  return Decoded<Variant>{std::move(std::get<Variant>(parsed)), h.message_size()};
}

// Writing.

void encode_empty(char type, std::string& out) {
  const std::size_t at = begin_message(out, type);
  finish_message(out, at);
}

void put_formats(std::string& out, const std::vector<std::int16_t>& formats) {
  put_u16(out, static_cast<std::uint16_t>(formats.size()));
  for (const std::int16_t format : formats) put_i16(out, format);
}

void put_values(std::string& out, const std::vector<std::optional<std::string>>& values) {
  put_u16(out, static_cast<std::uint16_t>(values.size()));
  for (const auto& value : values) put_nullable_bytes(out, value);
}

void put_fields(std::string& out, const Fields& fields) {
  for (const auto& [code, value] : fields) {
    if (code == '\0') continue;  // would end the list early
    out.push_back(code);
    put_cstring(out, value);
  }
  out.push_back('\0');
}

template <class CopyResponse>
void encode_copy_response(const CopyResponse& m, std::string& out) {
  const std::size_t at = begin_message(out, CopyResponse::kType);
  put_u8(out, static_cast<std::uint8_t>(m.format));
  put_formats(out, m.column_formats);
  finish_message(out, at);
}

std::string_view find_field(const Fields& fields, char code) {
  for (const auto& [c, value] : fields) {
    if (c == code) return value;
  }
  return {};
}

std::string_view find_severity(const Fields& fields) {
  for (const auto& [c, value] : fields) {
    if (c == error_field::kSeverityNonLocalized) return value;
  }
  return find_field(fields, error_field::kSeverity);
}

}  // namespace

// ---------------------------------------------------------------------------
// Names and dispatch.

std::string_view frontend_message_name(char type) {
  switch (type) {
    case Bind::kType:
      return "Bind";
    case Close::kType:
      return "Close";
    case CopyData::kType:
      return "CopyData";
    case CopyDone::kType:
      return "CopyDone";
    case CopyFail::kType:
      return "CopyFail";
    case Describe::kType:
      return "Describe";
    case Execute::kType:
      return "Execute";
    case Flush::kType:
      return "Flush";
    case FunctionCall::kType:
      return "FunctionCall";
    case Parse::kType:
      return "Parse";
    case PasswordMessage::kType:
      return "PasswordMessage";
    case Query::kType:
      return "Query";
    case Sync::kType:
      return "Sync";
    case Terminate::kType:
      return "Terminate";
    default:
      return "unknown";
  }
}

std::string_view backend_message_name(char type) {
  switch (type) {
    case Authentication::kType:
      return "Authentication";
    case BackendKeyData::kType:
      return "BackendKeyData";
    case BindComplete::kType:
      return "BindComplete";
    case CloseComplete::kType:
      return "CloseComplete";
    case CommandComplete::kType:
      return "CommandComplete";
    case CopyData::kType:
      return "CopyData";
    case CopyDone::kType:
      return "CopyDone";
    case CopyInResponse::kType:
      return "CopyInResponse";
    case CopyOutResponse::kType:
      return "CopyOutResponse";
    case CopyBothResponse::kType:
      return "CopyBothResponse";
    case DataRow::kType:
      return "DataRow";
    case EmptyQueryResponse::kType:
      return "EmptyQueryResponse";
    case ErrorResponse::kType:
      return "ErrorResponse";
    case FunctionCallResponse::kType:
      return "FunctionCallResponse";
    case NegotiateProtocolVersion::kType:
      return "NegotiateProtocolVersion";
    case NoData::kType:
      return "NoData";
    case NoticeResponse::kType:
      return "NoticeResponse";
    case NotificationResponse::kType:
      return "NotificationResponse";
    case ParameterDescription::kType:
      return "ParameterDescription";
    case ParameterStatus::kType:
      return "ParameterStatus";
    case ParseComplete::kType:
      return "ParseComplete";
    case PortalSuspended::kType:
      return "PortalSuspended";
    case ReadyForQuery::kType:
      return "ReadyForQuery";
    case RowDescription::kType:
      return "RowDescription";
    default:
      return "unknown";
  }
}

std::variant<FrontendMessage, DecodeError> parse_frontend(char type, std::string_view body) {
  using V = FrontendMessage;
  const std::string_view name = frontend_message_name(type);
  switch (type) {
    case Bind::kType:
      return parse_as<Bind, V>(body, name);
    case Close::kType:
      return parse_as<Close, V>(body, name);
    case CopyData::kType:
      return parse_as<CopyData, V>(body, name);
    case CopyDone::kType:
      return parse_as<CopyDone, V>(body, name);
    case CopyFail::kType:
      return parse_as<CopyFail, V>(body, name);
    case Describe::kType:
      return parse_as<Describe, V>(body, name);
    case Execute::kType:
      return parse_as<Execute, V>(body, name);
    case Flush::kType:
      return parse_as<Flush, V>(body, name);
    case FunctionCall::kType:
      return parse_as<FunctionCall, V>(body, name);
    case Parse::kType:
      return parse_as<Parse, V>(body, name);
    case PasswordMessage::kType:
      return parse_as<PasswordMessage, V>(body, name);
    case Query::kType:
      return parse_as<Query, V>(body, name);
    case Sync::kType:
      return parse_as<Sync, V>(body, name);
    case Terminate::kType:
      return parse_as<Terminate, V>(body, name);
    default:
      return V{UnknownMessage{type, std::string(body)}};
  }
}

std::variant<BackendMessage, DecodeError> parse_backend(char type, std::string_view body) {
  using V = BackendMessage;
  const std::string_view name = backend_message_name(type);
  switch (type) {
    case Authentication::kType:
      return parse_as<Authentication, V>(body, name);
    case BackendKeyData::kType:
      return parse_as<BackendKeyData, V>(body, name);
    case BindComplete::kType:
      return parse_as<BindComplete, V>(body, name);
    case CloseComplete::kType:
      return parse_as<CloseComplete, V>(body, name);
    case CommandComplete::kType:
      return parse_as<CommandComplete, V>(body, name);
    case CopyData::kType:
      return parse_as<CopyData, V>(body, name);
    case CopyDone::kType:
      return parse_as<CopyDone, V>(body, name);
    case CopyInResponse::kType:
      return parse_as<CopyInResponse, V>(body, name);
    case CopyOutResponse::kType:
      return parse_as<CopyOutResponse, V>(body, name);
    case CopyBothResponse::kType:
      return parse_as<CopyBothResponse, V>(body, name);
    case DataRow::kType:
      return parse_as<DataRow, V>(body, name);
    case EmptyQueryResponse::kType:
      return parse_as<EmptyQueryResponse, V>(body, name);
    case ErrorResponse::kType:
      return parse_as<ErrorResponse, V>(body, name);
    case FunctionCallResponse::kType:
      return parse_as<FunctionCallResponse, V>(body, name);
    case NegotiateProtocolVersion::kType:
      return parse_as<NegotiateProtocolVersion, V>(body, name);
    case NoData::kType:
      return parse_as<NoData, V>(body, name);
    case NoticeResponse::kType:
      return parse_as<NoticeResponse, V>(body, name);
    case NotificationResponse::kType:
      return parse_as<NotificationResponse, V>(body, name);
    case ParameterDescription::kType:
      return parse_as<ParameterDescription, V>(body, name);
    case ParameterStatus::kType:
      return parse_as<ParameterStatus, V>(body, name);
    case ParseComplete::kType:
      return parse_as<ParseComplete, V>(body, name);
    case PortalSuspended::kType:
      return parse_as<PortalSuspended, V>(body, name);
    case ReadyForQuery::kType:
      return parse_as<ReadyForQuery, V>(body, name);
    case RowDescription::kType:
      return parse_as<RowDescription, V>(body, name);
    default:
      return V{UnknownMessage{type, std::string(body)}};
  }
}

DecodeResult<FrontendMessage> decode_frontend(std::string_view buf, std::size_t max_message_size) {
  return decode_typed<FrontendMessage>(buf, max_message_size, parse_frontend);
}

DecodeResult<BackendMessage> decode_backend(std::string_view buf, std::size_t max_message_size) {
  return decode_typed<BackendMessage>(buf, max_message_size, parse_backend);
}

// ---------------------------------------------------------------------------
// Frontend encoders.

void encode(const Bind& m, std::string& out) {
  const std::size_t at = begin_message(out, Bind::kType);
  put_cstring(out, m.portal);
  put_cstring(out, m.statement);
  put_formats(out, m.parameter_formats);
  put_values(out, m.parameters);
  put_formats(out, m.result_formats);
  finish_message(out, at);
}

void encode(const Close& m, std::string& out) {
  const std::size_t at = begin_message(out, Close::kType);
  out.push_back(m.target);
  put_cstring(out, m.name);
  finish_message(out, at);
}

void encode(const CopyData& m, std::string& out) {
  const std::size_t at = begin_message(out, CopyData::kType);
  put_bytes(out, m.data);
  finish_message(out, at);
}

void encode(const CopyDone& /*m*/, std::string& out) { encode_empty(CopyDone::kType, out); }

void encode(const CopyFail& m, std::string& out) {
  const std::size_t at = begin_message(out, CopyFail::kType);
  put_cstring(out, m.message);
  finish_message(out, at);
}

void encode(const Describe& m, std::string& out) {
  const std::size_t at = begin_message(out, Describe::kType);
  out.push_back(m.target);
  put_cstring(out, m.name);
  finish_message(out, at);
}

void encode(const Execute& m, std::string& out) {
  const std::size_t at = begin_message(out, Execute::kType);
  put_cstring(out, m.portal);
  put_i32(out, m.max_rows);
  finish_message(out, at);
}

void encode(const Flush& /*m*/, std::string& out) { encode_empty(Flush::kType, out); }

void encode(const FunctionCall& m, std::string& out) {
  const std::size_t at = begin_message(out, FunctionCall::kType);
  put_u32(out, m.function);
  put_formats(out, m.argument_formats);
  put_values(out, m.arguments);
  put_i16(out, m.result_format);
  finish_message(out, at);
}

void encode(const Parse& m, std::string& out) {
  const std::size_t at = begin_message(out, Parse::kType);
  put_cstring(out, m.name);
  put_cstring(out, m.query);
  put_u16(out, static_cast<std::uint16_t>(m.parameter_types.size()));
  for (const Oid type : m.parameter_types) put_u32(out, type);
  finish_message(out, at);
}

void encode(const PasswordMessage& m, std::string& out) {
  const std::size_t at = begin_message(out, PasswordMessage::kType);
  put_bytes(out, m.data);
  finish_message(out, at);
}

void encode(const Query& m, std::string& out) {
  const std::size_t at = begin_message(out, Query::kType);
  put_cstring(out, m.query);
  finish_message(out, at);
}

void encode(const Sync& /*m*/, std::string& out) { encode_empty(Sync::kType, out); }
void encode(const Terminate& /*m*/, std::string& out) { encode_empty(Terminate::kType, out); }

// ---------------------------------------------------------------------------
// Backend encoders.

void encode(const Authentication& m, std::string& out) {
  const std::size_t at = begin_message(out, Authentication::kType);
  put_i32(out, m.code);
  put_bytes(out, m.data);
  finish_message(out, at);
}

void encode(const BackendKeyData& m, std::string& out) {
  const std::size_t at = begin_message(out, BackendKeyData::kType);
  put_i32(out, m.process_id);
  put_i32(out, m.secret_key);
  finish_message(out, at);
}

void encode(const BindComplete& /*m*/, std::string& out) { encode_empty(BindComplete::kType, out); }

void encode(const CloseComplete& /*m*/, std::string& out) {
  encode_empty(CloseComplete::kType, out);
}

void encode(const CommandComplete& m, std::string& out) {
  const std::size_t at = begin_message(out, CommandComplete::kType);
  put_cstring(out, m.tag);
  finish_message(out, at);
}

void encode(const CopyInResponse& m, std::string& out) { encode_copy_response(m, out); }
void encode(const CopyOutResponse& m, std::string& out) { encode_copy_response(m, out); }
void encode(const CopyBothResponse& m, std::string& out) { encode_copy_response(m, out); }

void encode(const DataRow& m, std::string& out) {
  const std::size_t at = begin_message(out, DataRow::kType);
  put_values(out, m.columns);
  finish_message(out, at);
}

void encode(const EmptyQueryResponse& /*m*/, std::string& out) {
  encode_empty(EmptyQueryResponse::kType, out);
}

void encode(const ErrorResponse& m, std::string& out) {
  const std::size_t at = begin_message(out, ErrorResponse::kType);
  put_fields(out, m.fields);
  finish_message(out, at);
}

void encode(const FunctionCallResponse& m, std::string& out) {
  const std::size_t at = begin_message(out, FunctionCallResponse::kType);
  put_nullable_bytes(out, m.result);
  finish_message(out, at);
}

void encode(const NegotiateProtocolVersion& m, std::string& out) {
  const std::size_t at = begin_message(out, NegotiateProtocolVersion::kType);
  put_u32(out, (std::uint32_t{3} << 16) | (static_cast<std::uint32_t>(m.newest_minor) & 0xffff));
  put_i32(out, static_cast<std::int32_t>(m.unrecognized_options.size()));
  for (const auto& option : m.unrecognized_options) put_cstring(out, option);
  finish_message(out, at);
}

void encode(const NoData& /*m*/, std::string& out) { encode_empty(NoData::kType, out); }

void encode(const NoticeResponse& m, std::string& out) {
  const std::size_t at = begin_message(out, NoticeResponse::kType);
  put_fields(out, m.fields);
  finish_message(out, at);
}

void encode(const NotificationResponse& m, std::string& out) {
  const std::size_t at = begin_message(out, NotificationResponse::kType);
  put_i32(out, m.process_id);
  put_cstring(out, m.channel);
  put_cstring(out, m.payload);
  finish_message(out, at);
}

void encode(const ParameterDescription& m, std::string& out) {
  const std::size_t at = begin_message(out, ParameterDescription::kType);
  put_u16(out, static_cast<std::uint16_t>(m.parameter_types.size()));
  for (const Oid type : m.parameter_types) put_u32(out, type);
  finish_message(out, at);
}

void encode(const ParameterStatus& m, std::string& out) {
  const std::size_t at = begin_message(out, ParameterStatus::kType);
  put_cstring(out, m.name);
  put_cstring(out, m.value);
  finish_message(out, at);
}

void encode(const ParseComplete& /*m*/, std::string& out) {
  encode_empty(ParseComplete::kType, out);
}

void encode(const PortalSuspended& /*m*/, std::string& out) {
  encode_empty(PortalSuspended::kType, out);
}

void encode(const ReadyForQuery& m, std::string& out) {
  const std::size_t at = begin_message(out, ReadyForQuery::kType);
  out.push_back(m.status);
  finish_message(out, at);
}

void encode(const RowDescription& m, std::string& out) {
  const std::size_t at = begin_message(out, RowDescription::kType);
  put_u16(out, static_cast<std::uint16_t>(m.fields.size()));
  for (const FieldDescription& f : m.fields) {
    put_cstring(out, f.name);
    put_u32(out, f.table);
    put_i16(out, f.column);
    put_u32(out, f.type);
    put_i16(out, f.type_size);
    put_i32(out, f.type_modifier);
    put_i16(out, f.format);
  }
  finish_message(out, at);
}

void encode(const UnknownMessage& m, std::string& out) {
  const std::size_t at = begin_message(out, m.type);
  put_bytes(out, m.body);
  finish_message(out, at);
}

void encode(const FrontendMessage& message, std::string& out) {
  std::visit([&](const auto& m) { encode(m, out); }, message);
}

void encode(const BackendMessage& message, std::string& out) {
  std::visit([&](const auto& m) { encode(m, out); }, message);
}

// ---------------------------------------------------------------------------
// Helpers.

std::string_view ErrorResponse::field(char code) const { return find_field(fields, code); }
std::string_view ErrorResponse::severity() const { return find_severity(fields); }
std::string_view NoticeResponse::field(char code) const { return find_field(fields, code); }
std::string_view NoticeResponse::severity() const { return find_severity(fields); }

std::optional<std::vector<std::string>> sasl_mechanisms(std::string_view data) {
  WireReader r(data);
  std::vector<std::string> names;
  for (;;) {
    std::string name = read_string(r);
    if (!r.ok()) return std::nullopt;
    if (name.empty()) break;
    names.push_back(std::move(name));
  }
  if (!r.at_end()) return std::nullopt;
  return names;
}

Authentication make_sasl_authentication(const std::vector<std::string>& mechanisms) {
  Authentication auth{Authentication::kSASL, {}};
  for (const auto& name : mechanisms) {
    if (!name.empty()) put_cstring(auth.data, name);
  }
  auth.data.push_back('\0');
  return auth;
}

void record_parameter_status(std::vector<std::pair<std::string, std::string>>& parameters,
                             ParameterStatus status) {
  for (auto& [name, value] : parameters) {
    if (name == status.name) {
      value = std::move(status.value);
      return;
    }
  }
  parameters.emplace_back(std::move(status.name), std::move(status.value));
}

ErrorResponse make_error(std::string_view severity, std::string_view sqlstate,
                         std::string_view message, std::string_view detail) {
  ErrorResponse error;
  error.fields.emplace_back(error_field::kSeverity, std::string(severity));
  error.fields.emplace_back(error_field::kSeverityNonLocalized, std::string(severity));
  error.fields.emplace_back(error_field::kCode, std::string(sqlstate));
  error.fields.emplace_back(error_field::kMessage, std::string(message));
  if (!detail.empty()) error.fields.emplace_back(error_field::kDetail, std::string(detail));
  return error;
}

std::string encode_error(std::string_view severity, std::string_view sqlstate,
                         std::string_view message, std::string_view detail) {
  std::string out;
  encode(make_error(severity, sqlstate, message, detail), out);
  return out;
}

// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLINITIALRESPONSE
std::optional<SASLInitialResponse> parse_sasl_initial_response(std::string_view body) {
  WireReader r(body);
  SASLInitialResponse response;
  response.mechanism = read_string(r);
  if (const auto data = r.nullable_bytes()) response.data = std::string(*data);
  if (!r.ok() || !r.at_end() || response.mechanism.empty()) return std::nullopt;
  return response;
}

std::optional<std::string> parse_password(std::string_view body) {
  WireReader r(body);
  std::string password = read_string(r);
  if (!r.ok() || !r.at_end()) return std::nullopt;
  return password;
}

void encode(const SASLInitialResponse& m, std::string& out) {
  const std::size_t at = begin_message(out, PasswordMessage::kType);
  put_cstring(out, m.mechanism);
  put_nullable_bytes(out, m.data);
  finish_message(out, at);
}

void encode_sasl_response(std::string_view data, std::string& out) {
  const std::size_t at = begin_message(out, PasswordMessage::kType);
  put_bytes(out, data);
  finish_message(out, at);
}

void encode_password(std::string_view password, std::string& out) {
  const std::size_t at = begin_message(out, PasswordMessage::kType);
  put_cstring(out, password);
  finish_message(out, at);
}

}  // namespace pgflip::protocol
