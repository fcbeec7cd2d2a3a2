// Tabular admin replies: rows of flat JSON objects, rendered as an aligned text table.
#pragma once

#include <boost/json.hpp>

#include <string>
#include <vector>

#include "proxy/admin/admin_server.hpp"

namespace pgflip::proxy {

/// The rows of a `show ...` command. Every row has the same columns in the same order, so the
/// JSON result (an array of objects) and the console's RowDescription agree.
class AdminTable {
 public:
  explicit AdminTable(std::vector<std::string> columns) : columns_(std::move(columns)) {}

  /// One row: a cell per column, in column order (strings, integers, doubles, booleans, null).
  void add(std::vector<boost::json::value> cells);

  [[nodiscard]] std::size_t size() const { return rows_.size(); }
  [[nodiscard]] boost::json::array to_json() const;
  /// Aligned columns under a header, as pgflipctl prints them.
  [[nodiscard]] std::string to_text() const;
  [[nodiscard]] AdminReply reply(const std::string& footer = {}) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<boost::json::value>> rows_;
};

/// How a JSON value reads in a table cell and in a console DataRow: strings as they are,
/// integers in decimal, doubles in their shortest exact form, true/false, nested values as
/// JSON; null is empty here (a console sends SQL NULL instead).
[[nodiscard]] std::string cell_text(const boost::json::value& value);

}  // namespace pgflip::proxy
