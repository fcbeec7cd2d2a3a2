// Tabular admin replies: rows of flat JSON objects, rendered as an aligned text table.
#include "proxy/admin/admin_table.hpp"

#include <charconv>
#include <stdexcept>

#include "replication/reports.hpp"

namespace pgflip::proxy {

namespace json = boost::json;

void AdminTable::add(std::vector<json::value> cells) {
  if (cells.size() != columns_.size()) {
    throw std::logic_error("admin table row has " + std::to_string(cells.size()) + " cells for " +
                           std::to_string(columns_.size()) + " columns");
  }
  rows_.push_back(std::move(cells));
}

json::array AdminTable::to_json() const {
  json::array rows;
  rows.reserve(rows_.size());
  for (const auto& cells : rows_) {
    json::object row;
    for (std::size_t c = 0; c < columns_.size(); ++c) row[columns_[c]] = cells[c];
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string AdminTable::to_text() const {
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows_.size());
  for (const auto& row : rows_) {
    std::vector<std::string> line;
    line.reserve(row.size());
    for (const auto& value : row) line.push_back(cell_text(value));
    cells.push_back(std::move(line));
  }
  return replication::render_table(columns_, cells) + "(" + std::to_string(rows_.size()) +
         (rows_.size() == 1 ? " row)\n" : " rows)\n");
}

AdminReply AdminTable::reply(const std::string& footer) const {
  AdminReply reply = AdminReply::success(to_json(), to_text() + footer);
  reply.columns = columns_;
  return reply;
}

std::string cell_text(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null:
      return {};
    case json::kind::bool_:
      return value.get_bool() ? "true" : "false";
    case json::kind::int64:
      return std::to_string(value.get_int64());
    case json::kind::uint64:
      return std::to_string(value.get_uint64());
    case json::kind::double_: {
      char buffer[64];
      const auto result = std::to_chars(buffer, buffer + sizeof buffer, value.get_double());
      return std::string(buffer, result.ptr);
    }
    case json::kind::string:
      return std::string(value.get_string());
    default:
      return json::serialize(value);
  }
}

}  // namespace pgflip::proxy
