// libpq wrapper: connection parameters, result accessors, server errors to ReplicationError.
#include "replication/pg.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "replication/error.hpp"

namespace pgflip::replication {

std::string quote_qualified(std::string_view schema, std::string_view name) {
  return quote_ident(schema) + "." + quote_ident(name);
}

std::string conninfo_string(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [key, value] : params) {
    if (value.empty()) continue;
    if (!out.empty()) out += ' ';
    out += key + "='";
    for (char c : value) {
      if (c == '\'' || c == '\\') out += '\\';
      out += c;
    }
    out += '\'';
  }
  return out;
}

std::string text_array_literal(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

bool PgResult::is_null(int row, int col) const { return PQgetisnull(result_.get(), row, col) != 0; }

std::string PgResult::text(int row, int col) const {
  if (is_null(row, col)) return {};
  return std::string(PQgetvalue(result_.get(), row, col),
                     static_cast<std::size_t>(PQgetlength(result_.get(), row, col)));
}

std::optional<std::string> PgResult::opt_text(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return text(row, col);
}

std::int64_t PgResult::int64(int row, int col) const { return opt_int64(row, col).value_or(0); }

std::optional<std::int64_t> PgResult::opt_int64(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return std::strtoll(PQgetvalue(result_.get(), row, col), nullptr, 10);
}

double PgResult::float64(int row, int col) const { return opt_float64(row, col).value_or(0.0); }

std::optional<double> PgResult::opt_float64(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return std::strtod(PQgetvalue(result_.get(), row, col), nullptr);
}

bool PgResult::boolean(int row, int col) const {
  return !is_null(row, col) && PQgetvalue(result_.get(), row, col)[0] == 't';
}

PgConnection PgConnection::open(const ServerLogin& login, const std::string& database,
                                const ConnectOptions& options, std::string_view step) {
  // libpq's connect_timeout is whole seconds, at least 2.
  const auto timeout_s = std::max<long long>(
      2, std::chrono::ceil<std::chrono::seconds>(options.connect_timeout).count());
  // pgflip.internal=on keeps our own DDL out of the DDL log; our sessions stay writable while
  // blue is fenced (the fence changes the default only).
  const std::string pg_options =
      "-c statement_timeout=" + std::to_string(options.statement_timeout.count()) +
      " -c default_transaction_read_only=off -c pgflip.internal=on";
  const std::string port = std::to_string(login.port);
  const std::string timeout = std::to_string(timeout_s);
  std::vector<const char*> keys;
  std::vector<const char*> values;
  auto add = [&](const char* key, const std::string& value) {
    if (value.empty()) return;
    keys.push_back(key);
    values.push_back(value.c_str());
  };
  add("host", login.host);
  add("port", port);
  add("user", login.user);
  add("password", login.password);
  add("dbname", database);
  add("sslmode", login.sslmode);
  add("sslrootcert", login.sslrootcert);
  add("sslcert", login.sslcert);
  add("sslkey", login.sslkey);
  add("application_name", options.application_name);
  add("connect_timeout", timeout);
  add("options", pg_options);
  const std::string encoding = "UTF8";
  add("client_encoding", encoding);
  keys.push_back(nullptr);
  values.push_back(nullptr);

  PGconn* raw = PQconnectdbParams(keys.data(), values.data(), 0);
  if (raw == nullptr) {
    throw ReplicationError(ErrorKind::kConnection, database, std::string(step),
                           "out of memory opening a connection");
  }
  if (PQstatus(raw) != CONNECTION_OK) {
    std::string message = PQerrorMessage(raw);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    PQfinish(raw);
    throw ReplicationError(ErrorKind::kConnection, database, std::string(step),
                           "cannot connect to " + login.host + ":" + port + ": " + message);
  }
  // Server NOTICEs ("schema already exists, skipping") go to the debug log, not stderr.
  PQsetNoticeProcessor(
      raw, [](void*, const char* message) { spdlog::debug("postgres: {}", message); }, nullptr);
  return PgConnection(raw, database);
}

PgResult PgConnection::exec(std::string_view sql, std::string_view step) {
  return check(PQexec(conn_.get(), std::string(sql).c_str()), step);
}

PgResult PgConnection::exec(std::string_view sql,
                            const std::vector<std::optional<std::string>>& params,
                            std::string_view step) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return check(PQexecParams(conn_.get(), std::string(sql).c_str(), static_cast<int>(params.size()),
                            nullptr, values.data(), nullptr, nullptr, 0),
               step);
}

PgResult PgConnection::check(PGresult* raw, std::string_view step) {
  PgResult result(raw);
  const ExecStatusType status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;

  auto field = [raw](int code) -> std::string {
    const char* v = raw ? PQresultErrorField(raw, code) : nullptr;
    return v ? v : "";
  };
  std::string message = field(PG_DIAG_MESSAGE_PRIMARY);
  std::string detail = field(PG_DIAG_MESSAGE_DETAIL);
  if (const std::string hint = field(PG_DIAG_MESSAGE_HINT); !hint.empty()) {
    detail += (detail.empty() ? "HINT: " : "\nHINT: ") + hint;
  }
  const std::string sqlstate = field(PG_DIAG_SQLSTATE);
  const bool broken = PQstatus(conn_.get()) == CONNECTION_BAD;
  if (message.empty()) {
    message = PQerrorMessage(conn_.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
  }
  throw ReplicationError(broken ? ErrorKind::kConnection : ErrorKind::kServer, database_,
                         std::string(step), message, sqlstate, detail);
}

}  // namespace pgflip::replication
