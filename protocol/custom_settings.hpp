// Names of custom settings (`app.tenant`) a client's SQL sets: PostgreSQL lists placeholder
// settings nowhere (not in pg_settings, not in SHOW ALL), so a switchover can only move the ones
// whose names it saw go by.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgflip::protocol {

/// Adds to `names` (once each, lower-cased unless double-quoted) every dotted setting name that
/// `sql` may set: `SET [SESSION|LOCAL] a.b ...` and `RESET a.b` at the start of any of its
/// statements, and `set_config('a.b', ...)` anywhere. It reads no more than it must: text without
/// a '.' costs one memchr. It may over-report (a name in a comment, a `;` inside a literal):
/// the switchover asks the server for each name's value and moves only what is set.
void note_custom_settings(std::string_view sql, std::vector<std::string>& names);

}  // namespace pgflip::protocol
