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
// site that argument (more data, more epochs) no longer holds, so uniform is offered too, and the
// square root of the samples between the two (a site with 4x the data counts 2x).
enum class Weighting { kSamples, kUniform, kSqrtSamples };

absl::StatusOr<Weighting> ParseWeighting(std::string_view text);

// FedOpt's server optimizers (Reddi et al. 2021) over the pseudo-gradient d = average - start:
//   kSgd       x = start + lr d                                               (lr 1: FedAvg)
//   kMomentum  m = b1 m + d;  x = start + lr m                                (FedAvgM)
//   kAdam      m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;
//              x = start + lr m / (sqrt(v) + eps)                              (FedAdam)
enum class ServerOptimizer { kSgd, kMomentum, kAdam };

absl::StatusOr<ServerOptimizer> ParseServerOptimizer(std::string_view text);

// The server optimizer's state between a phase's rounds: per shared tensor, in the order of the
// round's start model, the first moment (FedAvgM's velocity) and, for kAdam, the second. A state
// whose sizes do not fit the round's tensors (or an empty one) starts from zeros.
struct ServerState {
  std::vector<std::vector<float>> first;
  std::vector<std::vector<float>> second;
};

struct StrategyOptions {
  Weighting weighting = Weighting::kSamples;
  ServerOptimizer server_optimizer = ServerOptimizer::kSgd;
  double server_learning_rate = 1.0;
  double server_beta1 = 0.9;
  double server_beta2 = 0.99;
  double server_epsilon = 1e-3;
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

// Replaces each `average[i]` by the server optimizer's new model from `start[i]` (kMomentum and
// kAdam update `state`, resized to zeros first when it does not fit). Errors (InvalidArgument
// naming the tensor, by `names[i]` when given, else by index): sizes that differ, a non-finite
// result.
absl::Status ApplyServerOptimizer(std::span<const std::span<const float>> start,
                                  std::vector<std::vector<float>>& average,
                                  const StrategyOptions& options, ServerState& state,
                                  std::span<const std::string> names = {});

class RoundAggregation {
 public:
  // `start`: the round's shared tensors with their scopes (their values must stay readable until
  // Finalize). `recycled`: accumulators of an earlier round to reuse. `state`: the server
  // optimizer's state after the phase's previous round (empty for its first round, or for kSgd).
  RoundAggregation(std::vector<SharedTensor> start, StrategyOptions options,
                   std::vector<std::vector<float>> recycled = {}, ServerState state = {});

  // Checks the whole update (tensors, then prototypes) and adds it only when all of it is valid;
  // on error nothing is added and the message names the site. Tensor values must stay readable
  // until pending() drops to 0 (see ScopedFedAvg::Add).
  absl::Status Add(const std::string& site, std::span<const std::string> site_joints,
                   std::span<const TensorView> update, int64_t num_samples,
                   std::span<const Prototype> prototypes, ValueCheck check = ValueCheck::kCheck);

  int num_updates() const { return sum_.num_updates(); }
  const StrategyOptions& options() const { return options_; }
  int pending() const { return sum_.pending(); }

  struct Result {
    std::vector<std::vector<float>> tensors;  // in the order of `start`
    std::vector<Prototype> prototypes;
    ServerState state;  // to hand to the phase's next round (empty for kSgd)
  };
  // The averaged model after the server step, and the averaged prototypes. Call once, last.
  absl::StatusOr<Result> Finalize();

 private:
  std::vector<std::span<const float>> start_values_;
  std::vector<std::string> names_;
  StrategyOptions options_;
  ServerState state_;
  ScopedFedAvg sum_;
  PrototypeAverager prototypes_;
};

}  // namespace fedjoint::common::aggregation
