// What the site agent's round loop needs from local training, as an interface so the federation
// is tested with small fakes and the real trainer (site_agent/training) plugs in unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/federation.pb.h"

namespace fedjoint::site_agent {

struct TrainRequest {
  fedjoint::v1::Task task;
  // The round's starting model: the global (shared) tensors merged with this site's own.
  common::tensors::TensorMap weights;
  // Final models of the job's earlier phases (global tensors merged with this site's own), by
  // phase name — e.g. the shape-prior auto-encoder whose encoder the segmentation loss freezes.
  std::map<std::string, common::tensors::TensorMap> previous_phases;
  // Called now and then with the fraction of local training done, for heartbeats.
  std::function<void(double)> on_progress;
  // Stop training by this Unix time (s), returning what was trained so far; 0: no limit. Leaves
  // time for the upload before the round's deadline (an update arriving later is refused).
  double train_until_unix_s = 0;
};

struct TrainResult {
  common::tensors::TensorMap weights;  // every tensor of the model after local training
  int64_t num_samples = 0;             // samples (slices) that trained it
  std::vector<fedjoint::v1::Prototype> prototypes;
  std::map<std::string, double> metrics;
};

class LocalTrainer {
 public:
  virtual ~LocalTrainer() = default;
  // The site-scoped and integer tensors a freshly initialized model of `task`'s phase starts with
  // (the first time a site takes part in a phase; afterwards its own saved tensors are used).
  virtual absl::StatusOr<common::tensors::TensorMap> InitialSiteTensors(
      const fedjoint::v1::Task& task) = 0;
  virtual absl::StatusOr<TrainResult> Train(TrainRequest request) = 0;
  // The complete model (global tensors merged with this site's) made ready for inference here,
  // before the site exports it. The real trainer re-estimates the normalization statistics on
  // the site's scans: those it kept were gathered with its own pre-averaging weights. `model` is
  // the network description the coordinator signed into the model. Default: unchanged.
  virtual absl::StatusOr<common::tensors::TensorMap> PrepareForInference(
      const fedjoint::v1::ModelConfig& model, common::tensors::TensorMap weights) {
    (void)model;
    return weights;
  }
  // A personalized model: `weights` (the final model as PrepareForInference made it) fine-tuned
  // on this site's scans as `config` says. Default: Unimplemented.
  virtual absl::StatusOr<common::tensors::TensorMap> Personalize(
      const fedjoint::v1::ModelConfig& model, common::tensors::TensorMap weights,
      const fedjoint::v1::PersonalizationConfig& config) {
    (void)model;
    (void)weights;
    (void)config;
    return absl::UnimplementedError("this trainer cannot personalize a model");
  }
};

}  // namespace fedjoint::site_agent
