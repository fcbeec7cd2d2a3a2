// A small Prometheus metrics registry: sharded counters, gauges and duration histograms with
// labels, rendered in the text exposition format 0.0.4.
//
// Hot-path updates are relaxed atomic adds on a per-thread shard (one cache line per shard,
// threads spread round-robin over kShards), so worker threads never write the same line.
// Reads (scrapes) sum the shards; they see each value as of some recent moment, not one
// consistent snapshot across metrics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgflip::proxy::metrics {

inline constexpr std::size_t kShards = 16;

/// The next shard to hand to a thread (round-robin).
[[nodiscard]] std::size_t next_shard() noexcept;

/// The calling thread's shard, fixed for the thread's life.
[[nodiscard]] inline std::size_t shard_index() noexcept {
  thread_local const std::size_t index = next_shard();
  return index;
}

/// A monotonically increasing count.
class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    shards_[shard_index()].value.fetch_add(n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t value() const noexcept;

 private:
  struct alignas(64) Shard {
    std::atomic<std::uint64_t> value{0};
  };
  std::array<Shard, kShards> shards_;
};

/// A value that goes up and down; set from the control plane or at scrape time.
class Gauge {
 public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void add(double delta) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// A histogram of durations, exposed in seconds. Sums are kept in whole nanoseconds so that
/// they can be added atomically; the count is the sum of the buckets.
class Histogram {
 public:
  /// `bounds`: the buckets' upper bounds in seconds, strictly ascending; +Inf is implicit.
  explicit Histogram(std::span<const double> bounds);

  /// Plain (non-atomic) buckets for one thread to fill, then merge() in one go.
  class Local {
   public:
    explicit Local(const Histogram& histogram);
    void observe(std::chrono::nanoseconds duration) noexcept;
    [[nodiscard]] bool empty() const noexcept { return count_ == 0; }

   private:
    friend class Histogram;
    const Histogram* histogram_;
    std::vector<std::uint64_t> buckets_;
    std::uint64_t sum_ns_ = 0;
    std::uint64_t count_ = 0;
  };

  void observe(std::chrono::nanoseconds duration) noexcept;
  /// Adds `local` to this histogram and empties it.
  void merge(Local& local) noexcept;

  struct Snapshot {
    std::vector<std::uint64_t> buckets;  // per bucket (not cumulative); the last is +Inf
    std::uint64_t sum_ns = 0;
    [[nodiscard]] std::uint64_t count() const;
    [[nodiscard]] double sum_seconds() const { return static_cast<double>(sum_ns) / 1e9; }
  };
  [[nodiscard]] Snapshot snapshot() const;
  [[nodiscard]] const std::vector<double>& bounds() const noexcept { return bounds_; }

 private:
  [[nodiscard]] std::size_t bucket_of(std::uint64_t ns) const noexcept;
  /// Slot `k` of shard `s`: the buckets, then the sum in nanoseconds.
  [[nodiscard]] std::atomic<std::uint64_t>& at(std::size_t s, std::size_t k) const noexcept {
    return lines_[s * lines_per_shard_ + k / 8].values[k % 8];
  }

  std::vector<double> bounds_;
  std::vector<std::uint64_t> bounds_ns_;
  struct alignas(64) Line {
    std::atomic<std::uint64_t> values[8]{};
  };
  std::size_t lines_per_shard_;
  std::unique_ptr<Line[]> lines_;
};

/// Latency buckets, 100 µs to 10 s.
inline constexpr double kLatencyBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};
/// Slower steps (switchover steps, replication polls), 1 ms to 60 s.
inline constexpr double kStepBuckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5,
                                          1,     2.5,   5,    10,   30,  60};

using Labels = std::vector<std::string>;

/// One exposed metric name with its help text, type and labelled children.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, Labels label_names);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  [[nodiscard]] const std::string& name() const { return name_; }
  /// Appends "# HELP", "# TYPE" and one line per sample.
  virtual void render(std::string& out) const = 0;

 protected:
  void render_header(std::string& out, std::string_view type) const;
  /// `{l1="v1",...,extra_name="extra_value"}`, escaped; nothing when there are no labels.
  void render_labels(std::string& out, const Labels& values, std::string_view extra_name = {},
                     std::string_view extra_value = {}) const;

  std::string name_;
  std::string help_;
  Labels label_names_;
};

/// Children of one metric type keyed by label values. Children live until the family dies
/// (or, for gauges, until replace()), so references from with() may be cached.
template <class Metric>
class Family final : public FamilyBase {
 public:
  template <class... Args>
  Family(std::string name, std::string help, Labels label_names, Args&&... args)
      : FamilyBase(std::move(name), std::move(help), std::move(label_names)),
        make_([... args = std::forward<Args>(args)] { return std::make_unique<Metric>(args...); }) {
  }

  /// The child with these label values (as many as label names), made on first use. Locks:
  /// call it once and keep the reference, not per event.
  Metric& with(const Labels& values) {
    check_arity(values);
    std::lock_guard lock(mutex_);
    auto& slot = children_[values];
    if (!slot) slot = make_();
    return *slot;
  }

  /// Gauges only: the children become exactly `values` (for sets that shrink, e.g. the
  /// replicated databases). Invalidates references from with().
  /// (A member template so that explicit instantiations of Family leave it out: clang 14 would
  /// instantiate it for every Metric despite the constraint.)
  template <class M = Metric>
  requires std::is_same_v<M, Gauge>
  void replace(const std::vector<std::pair<Labels, double>>& values) {
    for (const auto& [labels, value] : values) check_arity(labels);
    std::lock_guard lock(mutex_);
    children_.clear();
    for (const auto& [labels, value] : values) {
      auto& slot = children_[labels];
      slot = make_();
      slot->set(value);
    }
  }

  void render(std::string& out) const override;

 private:
  void check_arity(const Labels& values) const;

  std::function<std::unique_ptr<Metric>()> make_;
  mutable std::mutex mutex_;
  std::map<Labels, std::unique_ptr<Metric>> children_;
};

template <>
void Family<Counter>::render(std::string& out) const;
template <>
void Family<Gauge>::render(std::string& out) const;
template <>
void Family<Histogram>::render(std::string& out) const;
extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

/// The set of families one endpoint exposes, in registration order.
class Registry {
 public:
  template <class Metric, class... Args>
  Family<Metric>& add(std::string name, std::string help, Labels label_names, Args&&... args) {
    auto family = std::make_unique<Family<Metric>>(
        std::move(name), std::move(help), std::move(label_names), std::forward<Args>(args)...);
    auto& ref = *family;
    add_family(std::move(family));
    return ref;
  }
  /// A family of another kind (rendered by itself).
  void add_family(std::unique_ptr<FamilyBase> family);
  /// Runs before every render, e.g. to set gauges computed at scrape time.
  void add_collector(std::function<void()> collector);

  /// The whole exposition text.
  [[nodiscard]] std::string render() const;

 private:
  mutable std::mutex mutex_;  // families_ and collectors_; one render at a time
  std::vector<std::unique_ptr<FamilyBase>> families_;
  std::vector<std::function<void()>> collectors_;
};

/// Prometheus' number format: shortest round-trip decimal, "+Inf", "-Inf", "NaN".
[[nodiscard]] std::string format_value(double value);
/// A label value escaped for the text format (backslash, double quote, newline).
[[nodiscard]] std::string escape_label_value(std::string_view value);

}  // namespace pgflip::proxy::metrics
