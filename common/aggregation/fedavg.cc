#include "common/aggregation/fedavg.h"

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

// Below this many elements the threading overhead outweighs the gain.
constexpr int64_t kParallelThreshold = 1 << 16;

// How many of v[0..n) are NaN or infinite. Branch-free on the bit pattern (exponent all ones) so
// it vectorizes and runs at memory speed; it is a full pass over every update, so it matters.
int64_t CountNonFinite(const float* __restrict v, int64_t n) {
  int64_t bad = 0;
#pragma omp parallel for simd reduction(+ : bad) schedule(static) if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], sizeof(bits));
    bad += (bits & 0x7f800000u) == 0x7f800000u;
  }
  return bad;
}

// sum (v[i] - s[i])^2 in double; only when a norm bound is configured (it also reads the start).
double SquaredDistance(const float* __restrict v, const float* __restrict s, int64_t n) {
  double sq = 0.0;
#pragma omp parallel for simd reduction(+ : sq) schedule(static) if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(v[i]) - double(s[i]);
    sq += d * d;
  }
  return sq;
}

}  // namespace

void AccumulateScaled(std::span<float> acc, std::span<const float> x, float weight) {
  const int64_t n = static_cast<int64_t>(acc.size());
  float* __restrict a = acc.data();
  const float* __restrict v = x.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) a[i] += weight * v[i];
}

ScopedFedAvg::ScopedFedAvg(std::vector<SharedTensor> tensors, UpdateLimits limits)
    : tensors_(std::move(tensors)), limits_(limits), weights_(tensors_.size(), 0.0) {
  sums_.reserve(tensors_.size());
  for (const auto& t : tensors_) sums_.emplace_back(t.start.values.size(), 0.0f);
}

absl::Status ScopedFedAvg::Validate(const std::string& site,
                                    std::span<const std::string> site_joints,
                                    std::span<const TensorView> update,
                                    std::vector<int>* order) const {
  std::unordered_map<std::string_view, int> index;
  index.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) index.emplace(tensors_[i].start.name, int(i));

  const std::string who = absl::StrCat("update from site '", site, "'");
  std::vector<bool> seen(tensors_.size(), false);
  order->assign(update.size(), -1);
  double squared_distance = 0.0;
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
    const int64_t n = static_cast<int64_t>(t.values.size());
    if (CountNonFinite(t.values.data(), n) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": tensor '", t.name, "' contains NaN or infinite values"));
    }
    if (limits_.max_update_norm > 0) {
      squared_distance += SquaredDistance(t.values.data(), ref.start.values.data(), n);
    }
    (*order)[u] = it->second;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const SharedTensor& ref = tensors_[i];
    bool expected = ref.scope.scope == Scope::kGlobal || HoldsJoint(site_joints, ref.scope.joint);
    if (expected && !seen[i]) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": tensor '", ref.start.name, "' (scope ",
                                                     DescribeScope(ref.scope), ") is missing"));
    }
  }
  if (limits_.max_update_norm > 0 && std::sqrt(squared_distance) > limits_.max_update_norm) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": update norm ", std::sqrt(squared_distance), " exceeds the bound of ",
                     limits_.max_update_norm));
  }
  return absl::OkStatus();
}

absl::Status ScopedFedAvg::Add(const std::string& site, std::span<const std::string> site_joints,
                               std::span<const TensorView> update, double weight) {
  if (!(weight > 0) || !std::isfinite(weight)) {
    return absl::InvalidArgumentError(
        absl::StrCat("update from site '", site, "': weight must be positive, got ", weight));
  }
  std::vector<int> order;
  if (absl::Status s = Validate(site, site_joints, update, &order); !s.ok()) return s;
  for (size_t u = 0; u < update.size(); ++u) {
    int i = order[u];
    AccumulateScaled(sums_[i], update[u].values, static_cast<float>(weight));
    weights_[i] += weight;
  }
  ++num_updates_;
  return absl::OkStatus();
}

std::vector<std::vector<float>> ScopedFedAvg::Finalize() const {
  std::vector<std::vector<float>> out(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (weights_[i] == 0.0) {
      const auto& start = tensors_[i].start.values;
      out[i].assign(start.begin(), start.end());
      continue;
    }
    out[i].resize(sums_[i].size());
    const float inv = static_cast<float>(1.0 / weights_[i]);
    for (size_t k = 0; k < sums_[i].size(); ++k) out[i][k] = sums_[i][k] * inv;
  }
  return out;
}

}  // namespace fedjoint::common::aggregation
