// Protocol 3.0 frontend and backend messages as plain structs, with their decoders and encoders.
//
// Formats: https://www.postgresql.org/docs/current/protocol-message-formats.html
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/codec.hpp"

namespace pgflip::protocol {

using Oid = std::uint32_t;

/// A message whose type byte this codec does not know; kept as raw bytes so it can be
/// passed through unchanged.
struct UnknownMessage {
  char type;
  std::string body;
  bool operator==(const UnknownMessage&) const = default;
};

// ---------------------------------------------------------------------------
// Sent by both sides.

struct CopyData {
  static constexpr char kType = 'd';
  std::string data;
  bool operator==(const CopyData&) const = default;
};

struct CopyDone {
  static constexpr char kType = 'c';
  bool operator==(const CopyDone&) const = default;
};

// ---------------------------------------------------------------------------
// Frontend (client to server).

struct Bind {
  static constexpr char kType = 'B';
  std::string portal;
  std::string statement;
  std::vector<std::int16_t> parameter_formats;         // none, one for all, or one per parameter
  std::vector<std::optional<std::string>> parameters;  // nullopt is SQL NULL
  std::vector<std::int16_t> result_formats;
  bool operator==(const Bind&) const = default;
};

struct Close {
  static constexpr char kType = 'C';
  char target = 'S';  // 'S' prepared statement, 'P' portal
  std::string name;
  bool operator==(const Close&) const = default;
};

struct CopyFail {
  static constexpr char kType = 'f';
  std::string message;
  bool operator==(const CopyFail&) const = default;
};

struct Describe {
  static constexpr char kType = 'D';
  char target = 'S';  // 'S' prepared statement, 'P' portal
  std::string name;
  bool operator==(const Describe&) const = default;
};

struct Execute {
  static constexpr char kType = 'E';
  std::string portal;
  std::int32_t max_rows = 0;  // 0: no limit
  bool operator==(const Execute&) const = default;
};

struct Flush {
  static constexpr char kType = 'H';
  bool operator==(const Flush&) const = default;
};

struct FunctionCall {
  static constexpr char kType = 'F';
  Oid function = 0;
  std::vector<std::int16_t> argument_formats;  // none, one for all, or one per argument
  std::vector<std::optional<std::string>> arguments;
  std::int16_t result_format = 0;
  bool operator==(const FunctionCall&) const = default;
};

struct Parse {
  static constexpr char kType = 'P';
  std::string name;  // empty: the unnamed statement
  std::string query;
  std::vector<Oid> parameter_types;  // 0: unspecified
  bool operator==(const Parse&) const = default;
};

/// The body of any 'p' message, verbatim: a PasswordMessage (NUL-terminated password),
/// SASLInitialResponse, SASLResponse or GSSResponse. Which one it is depends on the
/// authentication request it answers; see parse_password() and
/// parse_sasl_initial_response().
struct PasswordMessage {
  static constexpr char kType = 'p';
  std::string data;
  bool operator==(const PasswordMessage&) const = default;
};

struct Query {
  static constexpr char kType = 'Q';
  std::string query;
  bool operator==(const Query&) const = default;
};

struct Sync {
  static constexpr char kType = 'S';
  bool operator==(const Sync&) const = default;
};

struct Terminate {
  static constexpr char kType = 'X';
  bool operator==(const Terminate&) const = default;
};

// ---------------------------------------------------------------------------
// Backend (server to client).

/// Every AuthenticationXXX request: the code and the bytes after it.
struct Authentication {
  static constexpr char kType = 'R';
  static constexpr std::int32_t kOk = 0;
  static constexpr std::int32_t kKerberosV5 = 2;
  static constexpr std::int32_t kCleartextPassword = 3;
  static constexpr std::int32_t kMD5Password = 5;  // data: 4-byte salt
  static constexpr std::int32_t kGSS = 7;
  static constexpr std::int32_t kGSSContinue = 8;  // data: GSSAPI or SSPI token
  static constexpr std::int32_t kSSPI = 9;
  static constexpr std::int32_t kSASL = 10;          // data: mechanism names, see sasl_mechanisms()
  static constexpr std::int32_t kSASLContinue = 11;  // data: server-first-message
  static constexpr std::int32_t kSASLFinal = 12;     // data: server-final-message

  std::int32_t code = kOk;
  std::string data;
  bool operator==(const Authentication&) const = default;
};

/// The mechanism names of an AuthenticationSASL data field, or nullopt if malformed.
[[nodiscard]] std::optional<std::vector<std::string>> sasl_mechanisms(std::string_view data);

/// An AuthenticationSASL request offering `mechanisms`.
[[nodiscard]] Authentication make_sasl_authentication(const std::vector<std::string>& mechanisms);

struct BackendKeyData {
  static constexpr char kType = 'K';
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
  bool operator==(const BackendKeyData&) const = default;
};

struct BindComplete {
  static constexpr char kType = '2';
  bool operator==(const BindComplete&) const = default;
};

struct CloseComplete {
  static constexpr char kType = '3';
  bool operator==(const CloseComplete&) const = default;
};

struct CommandComplete {
  static constexpr char kType = 'C';
  std::string tag;  // "SELECT 1", "INSERT 0 5", ...
  bool operator==(const CommandComplete&) const = default;
};

struct CopyInResponse {
  static constexpr char kType = 'G';
  std::int8_t format = 0;  // 0 text, 1 binary
  std::vector<std::int16_t> column_formats;
  bool operator==(const CopyInResponse&) const = default;
};

struct CopyOutResponse {
  static constexpr char kType = 'H';
  std::int8_t format = 0;
  std::vector<std::int16_t> column_formats;
  bool operator==(const CopyOutResponse&) const = default;
};

struct CopyBothResponse {
  static constexpr char kType = 'W';
  std::int8_t format = 0;
  std::vector<std::int16_t> column_formats;
  bool operator==(const CopyBothResponse&) const = default;
};

struct DataRow {
  static constexpr char kType = 'D';
  std::vector<std::optional<std::string>> columns;  // nullopt is SQL NULL
  bool operator==(const DataRow&) const = default;
};

struct EmptyQueryResponse {
  static constexpr char kType = 'I';
  bool operator==(const EmptyQueryResponse&) const = default;
};

/// Well-known field codes of ErrorResponse and NoticeResponse.
/// https://www.postgresql.org/docs/current/protocol-error-fields.html
namespace error_field {
inline constexpr char kSeverity = 'S';
inline constexpr char kSeverityNonLocalized = 'V';
inline constexpr char kCode = 'C';
inline constexpr char kMessage = 'M';
inline constexpr char kDetail = 'D';
inline constexpr char kHint = 'H';
}  // namespace error_field

struct ErrorResponse {
  static constexpr char kType = 'E';
  std::vector<std::pair<char, std::string>> fields;  // in wire order

  /// The first field with this code, or an empty view.
  [[nodiscard]] std::string_view field(char code) const;
  /// 'V' (never localized) when present, else 'S'.
  [[nodiscard]] std::string_view severity() const;
  [[nodiscard]] std::string_view code() const { return field(error_field::kCode); }  // SQLSTATE
  [[nodiscard]] std::string_view message() const { return field(error_field::kMessage); }
  [[nodiscard]] std::string_view detail() const { return field(error_field::kDetail); }
  bool operator==(const ErrorResponse&) const = default;
};

struct NoticeResponse {
  static constexpr char kType = 'N';
  std::vector<std::pair<char, std::string>> fields;  // in wire order

  [[nodiscard]] std::string_view field(char code) const;
  [[nodiscard]] std::string_view severity() const;
  [[nodiscard]] std::string_view code() const { return field(error_field::kCode); }
  [[nodiscard]] std::string_view message() const { return field(error_field::kMessage); }
  [[nodiscard]] std::string_view detail() const { return field(error_field::kDetail); }
  bool operator==(const NoticeResponse&) const = default;
};

struct FunctionCallResponse {
  static constexpr char kType = 'V';
  std::optional<std::string> result;  // nullopt is SQL NULL
  bool operator==(const FunctionCallResponse&) const = default;
};

/// Sent when the client asked for a newer minor version or for protocol options (_pq_.*)
/// the server does not know. The docs call the Int32 the "newest minor version", but
/// PostgreSQL sends the whole version (3 << 16 | minor) and libpq 18 reads it that way: the
/// encoder writes 3 << 16 | newest_minor; the decoder accepts both forms.
struct NegotiateProtocolVersion {
  static constexpr char kType = 'v';
  std::int32_t newest_minor = 0;
  std::vector<std::string> unrecognized_options;
  bool operator==(const NegotiateProtocolVersion&) const = default;
};

struct NoData {
  static constexpr char kType = 'n';
  bool operator==(const NoData&) const = default;
};

struct NotificationResponse {
  static constexpr char kType = 'A';
  std::int32_t process_id = 0;
  std::string channel;
  std::string payload;
  bool operator==(const NotificationResponse&) const = default;
};

struct ParameterDescription {
  static constexpr char kType = 't';
  std::vector<Oid> parameter_types;
  bool operator==(const ParameterDescription&) const = default;
};

struct ParameterStatus {
  static constexpr char kType = 'S';
  std::string name;
  std::string value;
  bool operator==(const ParameterStatus&) const = default;
};

struct ParseComplete {
  static constexpr char kType = '1';
  bool operator==(const ParseComplete&) const = default;
};

struct PortalSuspended {
  static constexpr char kType = 's';
  bool operator==(const PortalSuspended&) const = default;
};

struct ReadyForQuery {
  static constexpr char kType = 'Z';
  static constexpr char kIdle = 'I';
  static constexpr char kInTransaction = 'T';
  static constexpr char kFailedTransaction = 'E';
  char status = kIdle;
  bool operator==(const ReadyForQuery&) const = default;
};

struct FieldDescription {
  std::string name;
  Oid table = 0;               // 0 if not a table column
  std::int16_t column = 0;     // attribute number, 0 if not a table column
  Oid type = 0;                // data type OID
  std::int16_t type_size = 0;  // negative: variable width
  std::int32_t type_modifier = 0;
  std::int16_t format = 0;  // 0 text, 1 binary (0 in a Describe answer)
  bool operator==(const FieldDescription&) const = default;
};

struct RowDescription {
  static constexpr char kType = 'T';
  std::vector<FieldDescription> fields;
  bool operator==(const RowDescription&) const = default;
};

using FrontendMessage =
    std::variant<Bind, Close, CopyData, CopyDone, CopyFail, Describe, Execute, Flush, FunctionCall,
                 Parse, PasswordMessage, Query, Sync, Terminate, UnknownMessage>;

using BackendMessage =
    std::variant<Authentication, BackendKeyData, BindComplete, CloseComplete, CommandComplete,
                 CopyData, CopyDone, CopyInResponse, CopyOutResponse, CopyBothResponse, DataRow,
                 EmptyQueryResponse, ErrorResponse, FunctionCallResponse, NegotiateProtocolVersion,
                 NoData, NoticeResponse, NotificationResponse, ParameterDescription,
                 ParameterStatus, ParseComplete, PortalSuspended, ReadyForQuery, RowDescription,
                 UnknownMessage>;

// ---------------------------------------------------------------------------
// Decoding. A decoder never consumes part of a message: NeedMoreData until the whole
// message is in `buf`; then Decoded with consumed = 1 + length. Header errors as in
// decode_header(); a body that does not match its format is kMalformed. Unknown type
// bytes decode to UnknownMessage.

[[nodiscard]] DecodeResult<FrontendMessage> decode_frontend(
    std::string_view buf, std::size_t max_message_size = kDefaultMaxMessageSize);
[[nodiscard]] DecodeResult<BackendMessage> decode_backend(
    std::string_view buf, std::size_t max_message_size = kDefaultMaxMessageSize);

/// Decodes a body whose type byte and length were already read (e.g. by FrameScanner).
[[nodiscard]] std::variant<FrontendMessage, DecodeError> parse_frontend(char type,
                                                                        std::string_view body);
[[nodiscard]] std::variant<BackendMessage, DecodeError> parse_backend(char type,
                                                                      std::string_view body);

/// The body of one known message type (Msg::kType), or nullopt if it is malformed: for code
/// that has a body in hand (e.g. from FrameScanner) and wants one message kind out of it.
template <class Msg>
[[nodiscard]] std::optional<Msg> parse_backend_as(std::string_view body) {
  auto parsed = parse_backend(Msg::kType, body);
  if (auto* message = std::get_if<BackendMessage>(&parsed)) {
    if (auto* typed = std::get_if<Msg>(message)) return std::move(*typed);
  }
  return std::nullopt;
}
template <class Msg>
[[nodiscard]] std::optional<Msg> parse_frontend_as(std::string_view body) {
  auto parsed = parse_frontend(Msg::kType, body);
  if (auto* message = std::get_if<FrontendMessage>(&parsed)) {
    if (auto* typed = std::get_if<Msg>(message)) return std::move(*typed);
  }
  return std::nullopt;
}

/// The message's name as in the docs ("Query"), or "unknown", for logs.
[[nodiscard]] std::string_view frontend_message_name(char type);
[[nodiscard]] std::string_view backend_message_name(char type);

// ---------------------------------------------------------------------------
// Encoding: each appends the whole message (type byte, length, body) to `out`. String
// fields are written up to their first NUL (a NUL cannot be represented in them).

void encode(const Bind& message, std::string& out);
void encode(const Close& message, std::string& out);
void encode(const CopyData& message, std::string& out);
void encode(const CopyDone& message, std::string& out);
void encode(const CopyFail& message, std::string& out);
void encode(const Describe& message, std::string& out);
void encode(const Execute& message, std::string& out);
void encode(const Flush& message, std::string& out);
void encode(const FunctionCall& message, std::string& out);
void encode(const Parse& message, std::string& out);
void encode(const PasswordMessage& message, std::string& out);
void encode(const Query& message, std::string& out);
void encode(const Sync& message, std::string& out);
void encode(const Terminate& message, std::string& out);

void encode(const Authentication& message, std::string& out);
void encode(const BackendKeyData& message, std::string& out);
void encode(const BindComplete& message, std::string& out);
void encode(const CloseComplete& message, std::string& out);
void encode(const CommandComplete& message, std::string& out);
void encode(const CopyInResponse& message, std::string& out);
void encode(const CopyOutResponse& message, std::string& out);
void encode(const CopyBothResponse& message, std::string& out);
void encode(const DataRow& message, std::string& out);
void encode(const EmptyQueryResponse& message, std::string& out);
void encode(const ErrorResponse& message, std::string& out);
void encode(const FunctionCallResponse& message, std::string& out);
void encode(const NegotiateProtocolVersion& message, std::string& out);
void encode(const NoData& message, std::string& out);
void encode(const NoticeResponse& message, std::string& out);
void encode(const NotificationResponse& message, std::string& out);
void encode(const ParameterDescription& message, std::string& out);
void encode(const ParameterStatus& message, std::string& out);
void encode(const ParseComplete& message, std::string& out);
void encode(const PortalSuspended& message, std::string& out);
void encode(const ReadyForQuery& message, std::string& out);
void encode(const RowDescription& message, std::string& out);

void encode(const UnknownMessage& message, std::string& out);
void encode(const FrontendMessage& message, std::string& out);
void encode(const BackendMessage& message, std::string& out);

// ---------------------------------------------------------------------------
// Helpers.

/// An ErrorResponse with severity (both 'S' and the non-localized 'V'), SQLSTATE, message
/// and, if not empty, detail.
[[nodiscard]] ErrorResponse make_error(std::string_view severity, std::string_view sqlstate,
                                       std::string_view message, std::string_view detail = {});

/// make_error() encoded as a whole 'E' message.
[[nodiscard]] std::string encode_error(std::string_view severity, std::string_view sqlstate,
                                       std::string_view message, std::string_view detail = {});

/// Records a ParameterStatus in the list of a server's reported parameters (in the order
/// first reported): a known name takes the new value in place, a new name is appended.
void record_parameter_status(std::vector<std::pair<std::string, std::string>>& parameters,
                             ParameterStatus status);

/// The body of a 'p' message answering AuthenticationSASL.
/// https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLINITIALRESPONSE
struct SASLInitialResponse {
  std::string mechanism;
  std::optional<std::string> data;  // Int32 length -1 on the wire: nullopt
  bool operator==(const SASLInitialResponse&) const = default;
};

/// nullopt if the body is not a well-formed SASLInitialResponse.
[[nodiscard]] std::optional<SASLInitialResponse> parse_sasl_initial_response(std::string_view body);

/// The password of a 'p' body answering a cleartext or MD5 request, or nullopt if it is
/// not a single NUL-terminated string.
[[nodiscard]] std::optional<std::string> parse_password(std::string_view body);

/// Whole 'p' message carrying a SASLInitialResponse.
void encode(const SASLInitialResponse& message, std::string& out);
/// Whole 'p' message carrying a SASLResponse (the raw SASL data).
void encode_sasl_response(std::string_view data, std::string& out);
/// Whole 'p' message carrying a password (cleartext, or an "md5..." response), NUL-terminated.
void encode_password(std::string_view password, std::string& out);

}  // namespace pgflip::protocol
