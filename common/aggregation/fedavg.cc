#include "common/aggregation/fedavg.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedjoint::common::aggregation {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool HoldsJoint(std::span<const std::string> joints, const std::string& joint) {
  for (const auto& j : joints)
    if (j == joint) return true;
  return false;
}

// Below this many elements in all, the threading overhead outweighs the gain.
constexpr int64_t kParallelThreshold = 1 << 16;
// Work is split into pieces of at most this many floats (64 KB), handed to the threads.
constexpr int64_t kPiece = 1 << 14;
// The fold goes through the model in windows of this many floats per update (1 MB) when the
// caller releases what has been added (file mappings), else in larger ones.
constexpr int64_t kReleaseWindow = 1 << 18;
constexpr int64_t kWindow = 1 << 22;

// A range of one tensor: [begin, end) of tensor `tensor`.
struct Range {
  int tensor;
  int64_t begin, end;
};

// Splits ranges into pieces of at most kPiece floats.
std::vector<Range> Pieces(std::span<const Range> ranges) {
  std::vector<Range> pieces;
  for (const Range& r : ranges) {
    for (int64_t b = r.begin; b < r.end; b += kPiece) {
      pieces.push_back({r.tensor, b, std::min(r.end, b + kPiece)});
    }
  }
  return pieces;
}

// sum (v[i] - s[i])^2 in double, and how many of v are not finite.
void DistanceAndNonFinite(const float* __restrict v, const float* __restrict s, int64_t n,
                          double* squared, int64_t* bad) {
  double sq = 0.0;
  int64_t nonfinite = 0;
#pragma omp simd reduction(+ : sq, nonfinite)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], sizeof(bits));
    nonfinite += IsNonFiniteBits(bits);
    const double d = double(v[i]) - double(s[i]);
    sq += d * d;
  }
  *squared = sq;
  *bad = nonfinite;
}

}  // namespace

__attribute__((target_clones("avx2", "default"))) int64_t CountNonFinite(
    std::span<const float> values) {
  const float* __restrict v = values.data();
  const int64_t n = static_cast<int64_t>(values.size());
  int64_t bad = 0;
#pragma omp simd reduction(+ : bad)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], sizeof(bits));
    bad += IsNonFiniteBits(bits);
  }
  return bad;
}

absl::Status ApplyServerStep(std::span<const float> start, std::span<float> averaged, double lr) {
  if (start.size() != averaged.size()) {
    return absl::InvalidArgumentError(absl::StrCat("server step: the starting tensor has ",
                                                   start.size(), " values, the average ",
                                                   averaged.size()));
  }
  if (lr == 1.0) return absl::OkStatus();
  const float step = static_cast<float>(lr);
  const float* __restrict s = start.data();
  float* __restrict a = averaged.data();
  const int64_t n = static_cast<int64_t>(averaged.size());
#pragma omp parallel for simd schedule(static) if (n >= kParallelThreshold)
  for (int64_t k = 0; k < n; ++k) a[k] = s[k] + step * (a[k] - s[k]);
  return absl::OkStatus();
}

// a[i] = (init ? 0 : a[i]) + w[0] x[0][i] + ... + w[K-1] x[K-1][i], added left to right. All K
// updates are read side by side: more memory streams in flight than one update at a time.
template <int K>
inline void FoldGroup(float* __restrict a, const float* const* x, const float* w, int64_t n,
                      bool init) {
  const float* __restrict xs[K];
  float ws[K];
  for (int k = 0; k < K; ++k) {
    xs[k] = x[k];
    ws[k] = w[k];
  }
  if (init) {
    // From 0, not from the first term: the same bits as a sum started at zero (-0 becomes +0).
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      float s = 0.0f;
      for (int k = 0; k < K; ++k) s += ws[k] * xs[k][i];
      a[i] = s;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      float s = a[i];
      for (int k = 0; k < K; ++k) s += ws[k] * xs[k][i];
      a[i] = s;
    }
  }
}

// Built for AVX2 too (chosen at run time). Not for FMA: a fused multiply-add rounds once where
// the portable build rounds twice, and the sum must not depend on the machine.
__attribute__((target_clones("avx2", "default"))) void FoldInto(
    std::span<float> acc, bool init, std::span<const std::span<const float>> xs,
    std::span<const float> weights) {
  const int64_t n = static_cast<int64_t>(acc.size());
  float* a = acc.data();
  for (size_t k = 0; k < xs.size();) {
    const size_t group = std::min<size_t>(8, xs.size() - k);
    const float* x[8];
    for (size_t j = 0; j < group; ++j) x[j] = xs[k + j].data();
    const float* w = weights.data() + k;
    switch (group) {
      case 8:
        FoldGroup<8>(a, x, w, n, init);
        break;
      case 7:
        FoldGroup<7>(a, x, w, n, init);
        break;
      case 6:
        FoldGroup<6>(a, x, w, n, init);
        break;
      case 5:
        FoldGroup<5>(a, x, w, n, init);
        break;
      case 4:
        FoldGroup<4>(a, x, w, n, init);
        break;
      case 3:
        FoldGroup<3>(a, x, w, n, init);
        break;
      case 2:
        FoldGroup<2>(a, x, w, n, init);
        break;
      default:
        FoldGroup<1>(a, x, w, n, init);
        break;
    }
    init = false;
    k += group;
  }
}

ScopedFedAvg::ScopedFedAvg(std::vector<SharedTensor> tensors, UpdateLimits limits, FoldOptions fold,
                           std::vector<std::vector<float>> recycled)
    : tensors_(std::move(tensors)),
      limits_(limits),
      fold_(std::move(fold)),
      summed_(tensors_.size(), false),
      weights_(tensors_.size(), 0.0) {
  fold_.batch = std::max(1, fold_.batch);
  sums_.resize(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (i < recycled.size() && recycled[i].size() == tensors_[i].start.values.size()) {
      sums_[i] = std::move(recycled[i]);
    } else {
      sums_[i].resize(tensors_[i].start.values.size());
    }
  }
}

absl::Status ScopedFedAvg::Validate(const std::string& site,
                                    std::span<const std::string> site_joints,
                                    std::span<const TensorView> update, ValueCheck check,
                                    std::vector<int>* order) const {
  std::unordered_map<std::string_view, int> index;
  index.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) index.emplace(tensors_[i].start.name, int(i));

  const std::string who = absl::StrCat("update from site '", site, "'");
  std::vector<bool> seen(tensors_.size(), false);
  order->assign(update.size(), -1);
  int64_t total = 0;
  for (size_t u = 0; u < update.size(); ++u) {
    const TensorView& t = update[u];
    auto it = index.find(t.name);
    if (it == index.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": tensor '", t.name,
                       "' is not a shared parameter of this round (unknown, or "
                       "site-scoped: site-scoped tensors must never leave the site)"));
    }
    const SharedTensor& ref = tensors_[it->second];
    if (seen[it->second]) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": tensor '", t.name, "' appears twice"));
    }
    seen[it->second] = true;
    if (ref.scope.scope == Scope::kDomain && !HoldsJoint(site_joints, ref.scope.joint)) {
      return absl::PermissionDeniedError(
          absl::StrCat(who, ": tensor '", t.name, "' has scope ", DescribeScope(ref.scope),
                       " but the site does not hold joint '", ref.scope.joint, "'"));
    }
    if (t.shape != ref.start.shape || t.values.size() != ref.start.values.size()) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": tensor '", t.name, "' has shape ",
                                                     ShapeString(t.shape), ", expected ",
                                                     ShapeString(ref.start.shape)));
    }
    (*order)[u] = it->second;
    total += static_cast<int64_t>(t.values.size());
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const SharedTensor& ref = tensors_[i];
    bool expected = ref.scope.scope == Scope::kGlobal || HoldsJoint(site_joints, ref.scope.joint);
    if (expected && !seen[i]) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": tensor '", ref.start.name, "' (scope ",
                                                     DescribeScope(ref.scope), ") is missing"));
    }
  }

  // The values: one pass, split over the threads, that checks finiteness and (with a bound) the
  // distance from the starting model.
  const bool bounded = limits_.max_update_norm > 0;
  if (check == ValueCheck::kAlreadyChecked && !bounded) return absl::OkStatus();
  std::vector<Range> ranges;
  for (size_t u = 0; u < update.size(); ++u) {
    ranges.push_back({int(u), 0, int64_t(update[u].values.size())});
  }
  const std::vector<Range> pieces = Pieces(ranges);
  std::vector<int64_t> bad(pieces.size(), 0);
  std::vector<double> squared(pieces.size(), 0.0);
  const int64_t num_pieces = static_cast<int64_t>(pieces.size());
#pragma omp parallel for schedule(static) if (total >= kParallelThreshold)
  for (int64_t p = 0; p < num_pieces; ++p) {
    const Range& r = pieces[size_t(p)];
    std::span<const float> v =
        update[size_t(r.tensor)].values.subspan(size_t(r.begin), size_t(r.end - r.begin));
    if (bounded) {
      const float* s = tensors_[size_t((*order)[size_t(r.tensor)])].start.values.data() + r.begin;
      DistanceAndNonFinite(v.data(), s, r.end - r.begin, &squared[size_t(p)], &bad[size_t(p)]);
    } else {
      bad[size_t(p)] = CountNonFinite(v);
    }
  }
  double squared_distance = 0.0;
  for (size_t p = 0; p < pieces.size(); ++p) {
    if (bad[p] > 0) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": tensor '",
                                                     update[size_t(pieces[p].tensor)].name,
                                                     "' contains NaN or infinite values"));
    }
    squared_distance += squared[p];
  }
  if (bounded && std::sqrt(squared_distance) > limits_.max_update_norm) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": update norm ", std::sqrt(squared_distance), " exceeds the bound of ",
                     limits_.max_update_norm));
  }
  return absl::OkStatus();
}

absl::Status ScopedFedAvg::Add(const std::string& site, std::span<const std::string> site_joints,
                               std::span<const TensorView> update, double weight,
                               ValueCheck check) {
  if (!(weight > 0) || !std::isfinite(weight)) {
    return absl::InvalidArgumentError(
        absl::StrCat("update from site '", site, "': weight must be positive, got ", weight));
  }
  std::vector<int> order;
  if (absl::Status s = Validate(site, site_joints, update, check, &order); !s.ok()) return s;
  Pending p;
  p.values.resize(tensors_.size());
  p.weight = static_cast<float>(weight);
  for (size_t u = 0; u < update.size(); ++u) {
    p.values[size_t(order[u])] = update[u].values;
    weights_[size_t(order[u])] += weight;
  }
  pending_.push_back(std::move(p));
  ++num_updates_;
  if (static_cast<int>(pending_.size()) >= fold_.batch) Flush();
  return absl::OkStatus();
}

void ScopedFedAvg::Flush() {
  if (pending_.empty()) return;
  const int64_t window = fold_.release ? kReleaseWindow : kWindow;
  // Windows of consecutive tensors (large ones cut), each folded in one parallel pass.
  std::vector<Range> ranges;
  int64_t in_window = 0;
  std::vector<std::span<const float>> xs;
  std::vector<float> ws;
  auto fold_window = [&] {
    if (ranges.empty()) return;
    const std::vector<Range> pieces = Pieces(ranges);
    const int64_t num_pieces = static_cast<int64_t>(pieces.size());
#pragma omp parallel for schedule(static) if (in_window >= kParallelThreshold)
    for (int64_t q = 0; q < num_pieces; ++q) {
      const Range& r = pieces[size_t(q)];
      const size_t i = size_t(r.tensor), count = size_t(r.end - r.begin);
      std::span<const float> piece_xs[64];
      float piece_ws[64];
      // Fold at most 64 updates at a time (a batch is rarely larger).
      size_t n = 0;
      bool init = !summed_[i];
      for (const Pending& p : pending_) {
        if (p.values[i].empty()) continue;
        piece_xs[n] = p.values[i].subspan(size_t(r.begin), count);
        piece_ws[n] = p.weight;
        if (++n == 64) {
          FoldInto(std::span<float>(sums_[i]).subspan(size_t(r.begin), count), init,
                   std::span(piece_xs, n), std::span(piece_ws, n));
          init = false;
          n = 0;
        }
      }
      if (n > 0) {
        FoldInto(std::span<float>(sums_[i]).subspan(size_t(r.begin), count), init,
                 std::span(piece_xs, n), std::span(piece_ws, n));
      }
    }
    if (fold_.release) {
      for (const Pending& p : pending_) {
        for (const Range& r : ranges) {
          const auto& v = p.values[size_t(r.tensor)];
          if (!v.empty()) fold_.release(v.subspan(size_t(r.begin), size_t(r.end - r.begin)));
        }
      }
    }
    ranges.clear();
    in_window = 0;
  };
  for (size_t i = 0; i < tensors_.size(); ++i) {
    bool contributed = false;
    for (const Pending& p : pending_) contributed = contributed || !p.values[i].empty();
    if (!contributed) continue;
    const int64_t n = static_cast<int64_t>(sums_[i].size());
    for (int64_t b = 0; b < n;) {
      const int64_t take = std::min(n - b, window - in_window);
      ranges.push_back({int(i), b, b + take});
      in_window += take;
      b += take;
      if (in_window >= window) fold_window();
    }
  }
  fold_window();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    for (const Pending& p : pending_) {
      if (!p.values[i].empty()) summed_[i] = true;
    }
  }
  pending_.clear();
}

std::vector<std::vector<float>> ScopedFedAvg::Finalize() {
  Flush();
  std::vector<std::vector<float>> out(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    out[i] = std::move(sums_[i]);
    if (weights_[i] == 0.0 || !summed_[i]) {
      const auto& start = tensors_[i].start.values;
      out[i].assign(start.begin(), start.end());
      continue;
    }
    const float inv = static_cast<float>(1.0 / weights_[i]);
    float* __restrict o = out[i].data();
    const int64_t n = static_cast<int64_t>(out[i].size());
#pragma omp parallel for simd schedule(static) if (n >= kParallelThreshold)
    for (int64_t k = 0; k < n; ++k) o[k] *= inv;
  }
  sums_.assign(tensors_.size(), {});
  summed_.assign(tensors_.size(), false);
  weights_.assign(tensors_.size(), 0.0);
  return out;
}

}  // namespace fedjoint::common::aggregation
