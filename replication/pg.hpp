// A thin RAII layer over blocking libpq: connections with timeouts, results, errors as exceptions.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/sql_quote.hpp"
#include "replication/settings.hpp"

namespace pgflip::replication {

// The one SQL quoting of the project (protocol/sql_quote.hpp), by its short names here.
using protocol::quote_ident;
using protocol::quote_literal;
/// "schema"."name"
[[nodiscard]] std::string quote_qualified(std::string_view schema, std::string_view name);
/// A libpq connection string from keyword/value pairs: values single-quoted, \ and ' escaped.
/// Pairs with an empty value are left out.
[[nodiscard]] std::string conninfo_string(
    const std::vector<std::pair<std::string, std::string>>& params);
/// A one-dimensional PostgreSQL array literal of text values ('{"a","b\"c"}'), for $n::text[].
[[nodiscard]] std::string text_array_literal(const std::vector<std::string>& values);

/// How a connection is opened (shared by every connection of one manager call).
struct ConnectOptions {
  std::string application_name = "pgflip-replication";
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds statement_timeout{60'000};
};

class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* result) : result_(result, &PQclear) {}

  [[nodiscard]] int rows() const { return result_ ? PQntuples(result_.get()) : 0; }
  [[nodiscard]] bool is_null(int row, int col) const;
  /// The text value; empty for NULL.
  [[nodiscard]] std::string text(int row, int col) const;
  [[nodiscard]] std::optional<std::string> opt_text(int row, int col) const;
  /// Integer value; 0 for NULL.
  [[nodiscard]] std::int64_t int64(int row, int col) const;
  [[nodiscard]] std::optional<std::int64_t> opt_int64(int row, int col) const;
  [[nodiscard]] double float64(int row, int col) const;
  [[nodiscard]] std::optional<double> opt_float64(int row, int col) const;
  /// 't' is true; anything else (NULL included) is false.
  [[nodiscard]] bool boolean(int row, int col) const;

 private:
  std::shared_ptr<PGresult> result_;
};

/// One blocking connection. Every statement runs under statement_timeout; errors throw
/// ReplicationError naming the database and the step.
class PgConnection {
 public:
  /// Opens `database` on `login`. Throws ReplicationError(kConnection).
  [[nodiscard]] static PgConnection open(const ServerLogin& login, const std::string& database,
                                         const ConnectOptions& options, std::string_view step);

  PgConnection(PgConnection&&) noexcept = default;
  PgConnection& operator=(PgConnection&&) noexcept = default;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;
  ~PgConnection() = default;

  /// Runs one statement (or several, separated by ';', without parameters).
  [[nodiscard]] PgResult exec(std::string_view sql, std::string_view step);
  /// Runs one statement with text parameters ($1...; std::nullopt is NULL).
  [[nodiscard]] PgResult exec(std::string_view sql,
                              const std::vector<std::optional<std::string>>& params,
                              std::string_view step);
  /// exec() for statements whose result is not needed.
  void run(std::string_view sql, std::string_view step) { (void)exec(sql, step); }
  void run(std::string_view sql, const std::vector<std::optional<std::string>>& params,
           std::string_view step) {
    (void)exec(sql, params, step);
  }

  [[nodiscard]] const std::string& database() const noexcept { return database_; }
  [[nodiscard]] int server_version() const { return PQserverVersion(conn_.get()); }
  [[nodiscard]] int backend_pid() const { return PQbackendPID(conn_.get()); }

 private:
  PgConnection(PGconn* conn, std::string database)
      : conn_(conn, &PQfinish), database_(std::move(database)) {}
  [[nodiscard]] PgResult check(PGresult* result, std::string_view step);

  std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
  std::string database_;
};

}  // namespace pgflip::replication
