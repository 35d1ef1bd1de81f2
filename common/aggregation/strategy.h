// How one round's updates become the next global model: the weight of each update, the bound on
// its norm, the running weighted sum (ScopedFedAvg), the server step and the prototype average.
// Pure math behind one object per round, no files, network or clock: the job (coordinator/job)
// feeds it verified updates and writes what Finalize returns. Server optimizers and other
// FedOpt-style options belong here.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/aggregation/fedavg.h"
#include "common/aggregation/prototypes.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::common::aggregation {

// How much an update counts. FedAvg weights by training samples; with budgets of equal steps per
// site that argument (more data, more epochs) no longer holds, so uniform is offered too.
enum class Weighting { kSamples, kUniform };

absl::StatusOr<Weighting> ParseWeighting(std::string_view text);

struct StrategyOptions {
  Weighting weighting = Weighting::kSamples;
  // FedOpt's server step with plain SGD: start + lr * (average - start); 1 is FedAvg.
  double server_learning_rate = 1.0;
  UpdateLimits limits;
  FoldOptions fold;
};

// A phase's options: its weighting and server step, its own update bound when set (phases train
// different networks whose honest update norms differ), else `job_limits`.
absl::StatusOr<StrategyOptions> StrategyOptionsFor(const v1::PhaseConfig& phase,
                                                   const UpdateLimits& job_limits,
                                                   FoldOptions fold = {});

// The weight of an update that trained on `num_samples` samples (>= 0).
double UpdateWeight(Weighting weighting, int64_t num_samples);

class RoundAggregation {
 public:
  // `start`: the round's shared tensors with their scopes (their values must stay readable until
  // Finalize). `recycled`: accumulators of an earlier round to reuse.
  RoundAggregation(std::vector<SharedTensor> start, StrategyOptions options,
                   std::vector<std::vector<float>> recycled = {});

  // Checks the whole update (tensors, then prototypes) and adds it only when all of it is valid;
  // on error nothing is added and the message names the site. Tensor values must stay readable
  // until pending() drops to 0 (see ScopedFedAvg::Add).
  absl::Status Add(const std::string& site, std::span<const std::string> site_joints,
                   std::span<const TensorView> update, int64_t num_samples,
                   std::span<const Prototype> prototypes, ValueCheck check = ValueCheck::kCheck);

  int num_updates() const { return sum_.num_updates(); }
  int pending() const { return sum_.pending(); }

  struct Result {
    std::vector<std::vector<float>> tensors;  // in the order of `start`
    std::vector<Prototype> prototypes;
  };
  // The averaged model after the server step, and the averaged prototypes. Call once, last.
  absl::StatusOr<Result> Finalize();

 private:
  std::vector<std::span<const float>> start_values_;
  std::vector<std::string> names_;
  StrategyOptions options_;
  ScopedFedAvg sum_;
  PrototypeAverager prototypes_;
};

}  // namespace fedjoint::common::aggregation
