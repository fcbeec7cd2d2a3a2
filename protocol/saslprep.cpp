// SASLprep (RFC 4013 over RFC 3454) with a small NFKC normalizer, following PostgreSQL's choices.
#include "protocol/saslprep.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <vector>

namespace pgflip::protocol {
namespace {

struct CodeRange {
  char32_t first;
  char32_t last;
};

struct CombiningClass {
  char32_t first;
  char32_t last;
  std::uint8_t value;
};

struct Decomposition {
  char32_t code;
  std::uint16_t offset;
  std::uint8_t length;
};

struct Composition {
  char32_t first;
  char32_t second;
  char32_t composite;
};

#include "protocol/saslprep_tables.inc"

bool in_table(char32_t c, std::span<const CodeRange> table) {
  const auto it = std::upper_bound(table.begin(), table.end(), c,
                                   [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != table.begin() && c <= std::prev(it)->last;
}

// Hangul syllables decompose and compose algorithmically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00;
constexpr char32_t kLBase = 0x1100;
constexpr char32_t kVBase = 0x1161;
constexpr char32_t kTBase = 0x11A7;
constexpr char32_t kLCount = 19;
constexpr char32_t kVCount = 21;
constexpr char32_t kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount;
constexpr char32_t kSCount = kLCount * kNCount;

std::uint8_t combining_class(char32_t c) {
  const std::span<const CombiningClass> table(kCombiningClasses);
  const auto it = std::upper_bound(table.begin(), table.end(), c,
                                   [](char32_t v, const CombiningClass& r) { return v < r.first; });
  if (it == table.begin() || c > std::prev(it)->last) return 0;
  return std::prev(it)->value;
}

void decompose(char32_t c, std::vector<char32_t>& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const std::span<const Decomposition> table(kDecompositions);
  const auto it = std::lower_bound(table.begin(), table.end(), c,
                                   [](const Decomposition& d, char32_t v) { return d.code < v; });
  if (it == table.end() || it->code != c) {
    out.push_back(c);
    return;
  }
  for (std::size_t i = 0; i < it->length; ++i) out.push_back(kDecompositionData[it->offset + i]);
}

std::optional<char32_t> compose_pair(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase &&
      second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 &&
      second > kTBase && second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const std::span<const Composition> table(kCompositions);
  const auto it =
      std::lower_bound(table.begin(), table.end(), std::pair{first, second},
                       [](const Composition& c, const std::pair<char32_t, char32_t>& v) {
                         return std::pair{c.first, c.second} < v;
                       });
  if (it == table.end() || it->first != first || it->second != second) return std::nullopt;
  return it->composite;
}

// Unicode Normalization Form KC: full compatibility decomposition, canonical ordering of
// combining marks, canonical composition.
std::vector<char32_t> normalize_nfkc(const std::vector<char32_t>& input) {
  std::vector<char32_t> chars;
  chars.reserve(input.size());
  for (const char32_t c : input) decompose(c, chars);

  // Canonical ordering: a stable sort of every run of non-starters by combining class.
  for (std::size_t i = 0; i < chars.size();) {
    if (combining_class(chars[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < chars.size() && combining_class(chars[end]) != 0) ++end;
    std::stable_sort(chars.begin() + static_cast<std::ptrdiff_t>(i),
                     chars.begin() + static_cast<std::ptrdiff_t>(end), [](char32_t a, char32_t b) {
                       return combining_class(a) < combining_class(b);
                     });
    i = end;
  }

  // Composition: each character joins the last starter unless something in between with
  // a class of 0 or not lower than its own blocks it.
  std::vector<char32_t> out;
  out.reserve(chars.size());
  std::optional<std::size_t> starter;
  for (const char32_t c : chars) {
    const std::uint8_t ccc = combining_class(c);
    if (starter) {
      const bool adjacent = *starter + 1 == out.size();
      const std::uint8_t last_ccc = adjacent ? 0 : combining_class(out.back());
      if (adjacent || (last_ccc != 0 && last_ccc < ccc)) {
        if (const auto composite = compose_pair(out[*starter], c)) {
          out[*starter] = *composite;
          continue;
        }
      }
    }
    if (ccc == 0) starter = out.size();
    out.push_back(c);
  }
  return out;
}

// Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
std::optional<std::vector<char32_t>> decode_utf8(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t length = 0;
    char32_t c = 0;
    char32_t min = 0;
    if (b0 < 0x80) {
      length = 1;
      c = b0;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = 2;
      c = b0 & 0x1F;
      min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      length = 3;
      c = b0 & 0x0F;
      min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      length = 4;
      c = b0 & 0x07;
      min = 0x10000;
    } else {
      return std::nullopt;
    }
    if (s.size() - i < length) return std::nullopt;
    for (std::size_t k = 1; k < length; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return std::nullopt;
      c = (c << 6) | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return std::nullopt;
    out.push_back(c);
    i += length;
  }
  return out;
}

void encode_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace

SaslprepResult saslprep(std::string_view input) {
  if (std::all_of(input.begin(), input.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    return {SaslprepStatus::kSuccess, std::string(input)};
  }
  const auto decoded = decode_utf8(input);
  if (!decoded) return {SaslprepStatus::kInvalidUtf8, {}};

  // 1. Map.
  std::vector<char32_t> mapped;
  mapped.reserve(decoded->size());
  for (const char32_t c : *decoded) {
    if (in_table(c, kNonAsciiSpace)) {
      mapped.push_back(U' ');
    } else if (!in_table(c, kMappedToNothing)) {
      mapped.push_back(c);
    }
  }
  if (mapped.empty()) return {SaslprepStatus::kProhibited, {}};

  // 2. Normalize.
  const std::vector<char32_t> normalized = normalize_nfkc(mapped);

  // 3. Prohibit and 4. bidi. PostgreSQL runs both on the mapped string, not the normalized
  // one; doing the same keeps the derived keys identical.
  bool has_randal = false;
  for (const char32_t c : mapped) {
    if (in_table(c, kProhibited) || in_table(c, kUnassigned)) {
      return {SaslprepStatus::kProhibited, {}};
    }
    has_randal = has_randal || in_table(c, kRandALCat);
  }
  if (has_randal) {
    for (const char32_t c : mapped) {
      if (in_table(c, kLCat)) return {SaslprepStatus::kProhibited, {}};
    }
    if (!in_table(mapped.front(), kRandALCat) || !in_table(mapped.back(), kRandALCat)) {
      return {SaslprepStatus::kProhibited, {}};
    }
  }

  std::string output;
  output.reserve(input.size());
  for (const char32_t c : normalized) encode_utf8(c, output);
  return {SaslprepStatus::kSuccess, std::move(output)};
}

std::string scram_prepare_password(std::string_view password) {
  SaslprepResult result = saslprep(password);
  if (result.status == SaslprepStatus::kSuccess) return std::move(result.output);
  return std::string(password);
}

}  // namespace pgflip::protocol
