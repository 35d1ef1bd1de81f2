// Per-domain prototypes for the contrastive loss across sites (DESIGN.md, "Contrastive
// regularization across sites"). A site sends, per joint it holds and per scale, the mean of its
// projected embeddings and how many slices went into it; the coordinator averages them weighted
// by count and hands the result to every site as negatives. Only these aggregates ever leave a
// site — never an image or a per-image feature (docs/security.md).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace fedjoint::common::aggregation {

struct Prototype {
  std::string domain;
  int scale = 0;
  std::vector<float> values;
  int64_t count = 0;
};

class PrototypeAverager {
 public:
  // Bounds what a site may send: at most this many scales and this embedding size.
  static constexpr int kMaxScales = 16;
  static constexpr size_t kMaxDim = 4096;

  // Adds a site's prototypes. Refused as a whole (nothing added) when a prototype names a domain
  // the site does not hold, repeats a (domain, scale), has a non-positive count, a non-finite
  // value, or a size different from earlier prototypes of the same scale.
  absl::Status Add(const std::string& site, std::span<const std::string> site_joints,
                   std::span<const Prototype> prototypes);
  // The checks of Add without adding (to validate before committing to other state).
  absl::Status Check(const std::string& site, std::span<const std::string> site_joints,
                     std::span<const Prototype> prototypes) const;

  // Count-weighted means, L2-normalized (the contrastive loss compares unit vectors), ordered by
  // (domain, scale). Count = total slices behind each.
  std::vector<Prototype> Finalize() const;
  void Reset() { sums_.clear(); }

 private:
  struct Sum {
    std::vector<double> values;
    int64_t count = 0;
  };
  std::map<std::pair<std::string, int>, Sum> sums_;
};

}  // namespace fedjoint::common::aggregation
