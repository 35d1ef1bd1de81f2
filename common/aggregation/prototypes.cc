#include "common/aggregation/prototypes.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::aggregation {

absl::Status PrototypeAverager::Check(const std::string& site,
                                      std::span<const std::string> site_joints,
                                      std::span<const Prototype> prototypes) const {
  const std::string who = absl::StrCat("prototypes from site '", site, "'");
  std::set<std::pair<std::string, int>> seen;
  std::map<int, size_t> dims;
  for (const auto& [key, sum] : sums_) dims[key.second] = sum.values.size();
  for (const Prototype& p : prototypes) {
    bool held = false;
    for (const auto& j : site_joints) held = held || j == p.domain;
    if (!held) {
      return absl::PermissionDeniedError(
          absl::StrCat(who, ": domain '", p.domain, "' is not a joint the site holds"));
    }
    if (p.scale < 0 || p.scale >= kMaxScales) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": scale ", p.scale, " out of range"));
    }
    if (!seen.insert({p.domain, p.scale}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": (", p.domain, ", scale ", p.scale, ") appears twice"));
    }
    if (p.count <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": (", p.domain, ", scale ", p.scale, ") has count ", p.count));
    }
    if (p.values.empty() || p.values.size() > kMaxDim) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": (", p.domain, ", scale ", p.scale,
                                                     ") has ", p.values.size(), " values"));
    }
    auto [it, inserted] = dims.emplace(p.scale, p.values.size());
    if (!inserted && it->second != p.values.size()) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": scale ", p.scale, " has size ",
                                                     p.values.size(), ", expected ", it->second));
    }
    for (float v : p.values) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat(who, ": (", p.domain, ", scale ", p.scale,
                                                       ") contains NaN or infinite values"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status PrototypeAverager::Add(const std::string& site,
                                    std::span<const std::string> site_joints,
                                    std::span<const Prototype> prototypes) {
  if (absl::Status s = Check(site, site_joints, prototypes); !s.ok()) return s;
  for (const Prototype& p : prototypes) {
    Sum& sum = sums_[{p.domain, p.scale}];
    sum.values.resize(p.values.size(), 0.0);
    for (size_t i = 0; i < p.values.size(); ++i) sum.values[i] += double(p.values[i]) * p.count;
    sum.count += p.count;
  }
  return absl::OkStatus();
}

std::vector<Prototype> PrototypeAverager::Finalize() const {
  std::vector<Prototype> out;
  for (const auto& [key, sum] : sums_) {
    Prototype p;
    p.domain = key.first;
    p.scale = key.second;
    p.count = sum.count;
    double norm = 0;
    for (double v : sum.values) norm += (v / sum.count) * (v / sum.count);
    norm = std::sqrt(norm);
    p.values.reserve(sum.values.size());
    for (double v : sum.values) p.values.push_back(float(norm > 0 ? (v / sum.count) / norm : 0.0));
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace fedjoint::common::aggregation
