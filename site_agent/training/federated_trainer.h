// The real LocalTrainer (site_agent/federation/local_trainer.h): trains the task's network on the
// site's manifest for the task's local budget.
//
// - `unet_resnet` phases: SegmentationTrainer with the task's prototypes as external negatives
//   and, when loss.shape_prior_weight > 0, the frozen encoder of the phase named
//   loss.shape_prior_phase (from TrainRequest::previous_phases); `shape_autoencoder` phases:
//   ShapePriorTrainer.
// - The starting weights must fit the task's network exactly (names and shapes); all weights
//   come back, the round loop decides what leaves the site.
// - num_samples = the training slices of the site (its validation subjects excluded), the same
//   number SamplesByJoint() reports for joining.
// - Slices are read once and kept for later rounds (per preprocessing and split).
// - Each round appends one line to STATE/metrics.jsonl (phase, round, losses, validation Dice).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/data/manifest.h"
#include "site_agent/federation/local_trainer.h"
#include "site_agent/training/training_data.h"

namespace fedjoint::site_agent::training {

struct FederatedTrainerOptions {
  std::filesystem::path manifest;
  std::filesystem::path state_dir;  // metrics.jsonl; empty: none
  int threads = 0;
  int loader_threads = 2;
  uint64_t seed = 1;
  bool show_progress = false;
};

class FederatedTrainer : public LocalTrainer {
 public:
  static absl::StatusOr<std::unique_ptr<FederatedTrainer>> Create(FederatedTrainerOptions options);

  absl::StatusOr<common::tensors::TensorMap> InitialSiteTensors(
      const fedjoint::v1::Task& task) override;
  absl::StatusOr<TrainResult> Train(TrainRequest request) override;

  // Training slices per joint under `model`'s preprocessing and `validation_fraction` (reads the
  // scans on first use).
  absl::StatusOr<std::map<std::string, int64_t>> SamplesByJoint(const v1::ModelConfig& model,
                                                                double validation_fraction);

 private:
  explicit FederatedTrainer(FederatedTrainerOptions options, common::data::Manifest manifest);
  absl::StatusOr<TrainingData> Data(const v1::ModelConfig& model, double validation_fraction);

  FederatedTrainerOptions options_;
  common::data::Manifest manifest_;
  std::map<std::string, TrainingData> cache_;
};

}  // namespace fedjoint::site_agent::training
