// Scoped FedAvg as a running weighted sum (McMahan et al. 2017, with FedBN-style site scopes).
//
// The coordinator feeds updates one at a time as they arrive; memory is one accumulator per
// shared tensor (O(model)), whatever the number of sites. Each update is validated completely
// before any of it is added, so a malformed or hostile update is refused without touching the
// running sum. Pure math: no network, no files, no torch.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/aggregation/scopes.h"

namespace fedjoint::common::aggregation {

// A named float32 tensor whose values live elsewhere (a memory-mapped file, a received buffer).
struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  std::span<const float> values;
};

// A shared tensor of the round's starting model with its resolved scope.
struct SharedTensor {
  TensorView start;
  ResolvedScope scope;  // kGlobal or kDomain; site-scoped tensors are never part of a round
};

struct UpdateLimits {
  // Refuse an update whose L2 distance from the starting model exceeds this (0 = no bound).
  double max_update_norm = 0.0;
};

class ScopedFedAvg {
 public:
  ScopedFedAvg(std::vector<SharedTensor> tensors, UpdateLimits limits);

  // Validates `update` from `site` (which holds `site_joints`) and adds it with `weight` (its
  // sample count). The update must contain exactly the global tensors and the domain tensors of
  // the site's joints, float32, with the starting model's shapes, finite, within the norm bound.
  // On error nothing is added; the message names the site and the tensor.
  absl::Status Add(const std::string& site, std::span<const std::string> site_joints,
                   std::span<const TensorView> update, double weight);

  int num_updates() const { return num_updates_; }

  // The averaged model in the order of the constructor's tensors. A tensor no update contributed
  // to (e.g. the head of a joint whose sites all dropped out) keeps its starting value.
  std::vector<std::vector<float>> Finalize() const;

 private:
  absl::Status Validate(const std::string& site, std::span<const std::string> site_joints,
                        std::span<const TensorView> update, std::vector<int>* order) const;

  std::vector<SharedTensor> tensors_;
  UpdateLimits limits_;
  std::vector<std::vector<float>> sums_;
  std::vector<double> weights_;  // total weight per tensor
  int num_updates_ = 0;
};

// acc[i] += weight * x[i], parallel over the machine's threads. Exposed for the benchmark.
void AccumulateScaled(std::span<float> acc, std::span<const float> x, float weight);

}  // namespace fedjoint::common::aggregation
