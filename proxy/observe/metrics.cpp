// The metrics registry and the Prometheus text exposition format 0.0.4.
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
#include "proxy/observe/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace pgflip::proxy::metrics {

namespace {

bool valid_name(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  const auto head = [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (allow_colon && c == ':');
  };
  if (!head(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

void append_escaped(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quotes && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void append_value(std::string& out, std::uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

}  // namespace

std::size_t next_shard() noexcept {
  static std::atomic<std::size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) % kShards;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  // Plain decimals for ordinary magnitudes (le="0.0001", not "1e-04"), exponents beyond.
  const double magnitude = std::fabs(value);
  const bool fixed = value == 0 || (magnitude >= 1e-4 && magnitude < 1e21);
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value,
                                    fixed ? std::chars_format::fixed : std::chars_format::general);
  return std::string(buffer, result.ptr);
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  append_escaped(out, value, true);
  return out;
}

std::uint64_t Counter::value() const noexcept {
  std::uint64_t total = 0;
  for (const auto& shard : shards_) total += shard.value.load(std::memory_order_relaxed);
  return total;
}

// ---------------------------------------------------------------------------
// Histogram

Histogram::Histogram(std::span<const double> bounds) : bounds_(bounds.begin(), bounds.end()) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!(bounds_[i] > 0) || std::isinf(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      throw std::invalid_argument("histogram bounds must be positive, finite and ascending");
    }
    bounds_ns_.push_back(static_cast<std::uint64_t>(std::llround(bounds_[i] * 1e9)));
  }
  const std::size_t slots = bounds_.size() + 2;  // buckets incl. +Inf, then the sum
  lines_per_shard_ = (slots + 7) / 8;
  lines_ = std::make_unique<Line[]>(lines_per_shard_ * kShards);
}

std::size_t Histogram::bucket_of(std::uint64_t ns) const noexcept {
  std::size_t i = 0;
  while (i < bounds_ns_.size() && ns > bounds_ns_[i]) ++i;
  return i;
}

void Histogram::observe(std::chrono::nanoseconds duration) noexcept {
  const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, duration.count()));
  const std::size_t s = shard_index();
  at(s, bucket_of(ns)).fetch_add(1, std::memory_order_relaxed);
  at(s, bounds_.size() + 1).fetch_add(ns, std::memory_order_relaxed);
}

Histogram::Local::Local(const Histogram& histogram)
    : histogram_(&histogram), buckets_(histogram.bounds_.size() + 1, 0) {}

void Histogram::Local::observe(std::chrono::nanoseconds duration) noexcept {
  const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, duration.count()));
  ++buckets_[histogram_->bucket_of(ns)];
  sum_ns_ += ns;
  ++count_;
}

void Histogram::merge(Local& local) noexcept {
  if (local.count_ == 0) return;
  const std::size_t s = shard_index();
  for (std::size_t i = 0; i < local.buckets_.size(); ++i) {
    if (local.buckets_[i] == 0) continue;
    at(s, i).fetch_add(local.buckets_[i], std::memory_order_relaxed);
    local.buckets_[i] = 0;
  }
  at(s, bounds_.size() + 1).fetch_add(local.sum_ns_, std::memory_order_relaxed);
  local.sum_ns_ = 0;
  local.count_ = 0;
}

std::uint64_t Histogram::Snapshot::count() const {
  std::uint64_t total = 0;
  for (auto n : buckets) total += n;
  return total;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.buckets.assign(bounds_.size() + 1, 0);
  for (std::size_t s = 0; s < kShards; ++s) {
    for (std::size_t i = 0; i < snapshot.buckets.size(); ++i) {
      snapshot.buckets[i] += at(s, i).load(std::memory_order_relaxed);
    }
    snapshot.sum_ns += at(s, bounds_.size() + 1).load(std::memory_order_relaxed);
  }
  return snapshot;
}

// ---------------------------------------------------------------------------
// Families

FamilyBase::FamilyBase(std::string name, std::string help, Labels label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  if (!valid_name(name_, true)) throw std::invalid_argument("bad metric name '" + name_ + "'");
  for (const auto& label : label_names_) {
    if (!valid_name(label, false) || label.starts_with("__") || label == "le") {
      throw std::invalid_argument("bad label name '" + label + "' for " + name_);
    }
  }
}

void FamilyBase::render_header(std::string& out, std::string_view type) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_escaped(out, help_, false);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type;
  out += '\n';
}

void FamilyBase::render_labels(std::string& out, const Labels& values, std::string_view extra_name,
                               std::string_view extra_value) const {
  if (values.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  const auto label = [&](std::string_view name, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  };
  for (std::size_t i = 0; i < values.size(); ++i) label(label_names_[i], values[i]);
  if (!extra_name.empty()) label(extra_name, extra_value);
  out += '}';
}

template <class Metric>
void Family<Metric>::check_arity(const Labels& values) const {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument(name_ + " takes " + std::to_string(label_names_.size()) +
                                " label value(s), got " + std::to_string(values.size()));
  }
}

template <>
void Family<Counter>::render(std::string& out) const {
  render_header(out, "counter");
  std::lock_guard lock(mutex_);
  for (const auto& [labels, counter] : children_) {
    out += name_;
    render_labels(out, labels);
    out += ' ';
    append_value(out, counter->value());
    out += '\n';
  }
}

template <>
void Family<Gauge>::render(std::string& out) const {
  render_header(out, "gauge");
  std::lock_guard lock(mutex_);
  for (const auto& [labels, gauge] : children_) {
    out += name_;
    render_labels(out, labels);
    out += ' ';
    out += format_value(gauge->value());
    out += '\n';
  }
}

template <>
void Family<Histogram>::render(std::string& out) const {
  render_header(out, "histogram");
  std::lock_guard lock(mutex_);
  for (const auto& [labels, histogram] : children_) {
    const auto snapshot = histogram->snapshot();
    const auto& bounds = histogram->bounds();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < snapshot.buckets.size(); ++i) {
      cumulative += snapshot.buckets[i];
      out += name_;
      out += "_bucket";
      render_labels(out, labels, "le", i < bounds.size() ? format_value(bounds[i]) : "+Inf");
      out += ' ';
      append_value(out, cumulative);
      out += '\n';
    }
    out += name_;
    out += "_sum";
    render_labels(out, labels);
    out += ' ';
    out += format_value(snapshot.sum_seconds());
    out += '\n';
    out += name_;
    out += "_count";
    render_labels(out, labels);
    out += ' ';
    append_value(out, cumulative);
    out += '\n';
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------------------
// Registry

void Registry::add_family(std::unique_ptr<FamilyBase> family) {
  std::lock_guard lock(mutex_);
  for (const auto& known : families_) {
    if (known->name() == family->name()) {
      throw std::invalid_argument("metric " + family->name() + " registered twice");
    }
  }
  families_.push_back(std::move(family));
}

void Registry::add_collector(std::function<void()> collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::render() const {
  std::lock_guard lock(mutex_);
  for (const auto& collect : collectors_) collect();
  std::string out;
  out.reserve(std::size_t{16} * 1024);
  for (const auto& family : families_) family->render(out);
  return out;
}

}  // namespace pgflip::proxy::metrics
