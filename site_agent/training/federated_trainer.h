// The real LocalTrainer (site_agent/federation/local_trainer.h): trains the task's network on the
// site's manifest for the task's local budget.
//
// - `unet_resnet` phases: SegmentationTrainer with the task's prototypes as external negatives
//   and, when loss.shape_prior_weight > 0, the frozen encoder of the phase named
//   loss.shape_prior_phase (from TrainRequest::previous_phases); `shape_autoencoder` phases:
//   ShapePriorTrainer.
// - The starting weights must fit the task's network exactly (names and shapes); all weights
//   come back, the round loop decides what leaves the site.
// - num_samples = the training slices of the site under the task's settings (its validation
//   subjects excluded). SamplesByJoint() reports, for joining, the labelled slices with no
//   validation holdout: an upper bound of num_samples whatever validation_fraction a task sets.
// - Slices are read once and kept for later rounds (per preprocessing and split).
// - Each round appends one line to STATE/metrics.jsonl (phase, round, losses, validation Dice of
//   the received model and of the trained one).
// - Learning-rate schedule over the round or the whole phase (OptimizerConfig.
//   federated_schedule; the task says which round of how many). With keep_state_across_rounds
//   the optimizer's state is kept in STATE/optimizer/<phase>.round-<r>.pt (the two newest): a
//   round starts from the state of the newest earlier round, so a retried round does not stack on
//   its own first try.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/data/manifest.h"
#include "site_agent/federation/local_trainer.h"
#include "site_agent/training/trainer_options.h"
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
  // Segmentation models: normalization statistics re-estimated for the final weights on batches
  // drawn as the last segmentation round drew them (SegmentationTrainer::
  // RecalibrateNormalization); other models unchanged.
  absl::StatusOr<common::tensors::TensorMap> PrepareForInference(
      const v1::ModelConfig& model, common::tensors::TensorMap weights) override;
  // Segmentation models: `config.steps` steps on every labelled slice of the site (no validation
  // holdout), with the last segmentation round's batches, loss and augmentation, a cosine schedule
  // from config.learning_rate without warm-up and a fresh optimizer; with parameters "decoder"
  // the encoder's convolutions do not train. Normalization statistics are then re-estimated as in
  // PrepareForInference.
  absl::StatusOr<common::tensors::TensorMap> Personalize(
      const v1::ModelConfig& model, common::tensors::TensorMap weights,
      const v1::PersonalizationConfig& config) override;

  // Labelled slices per joint under `model`'s preprocessing, none held out for validation: what
  // the site declares when it joins. The coordinator refuses an update claiming more than the
  // declared sum, and a task may hold out any fraction (the site config's validation_fraction is
  // not the task's), so the declaration must not depend on it. Reads the scans; not cached (the
  // tasks' own splits are what training keeps in memory).
  absl::StatusOr<std::map<std::string, int64_t>> SamplesByJoint(const v1::ModelConfig& model);

 private:
  explicit FederatedTrainer(FederatedTrainerOptions options, common::data::Manifest manifest);
  absl::StatusOr<TrainingData> Data(const v1::ModelConfig& model, double validation_fraction);
  // The options every segmentation run of this site shares (threads, loaders, progress).
  TrainerOptions BaseOptions(const v1::ModelConfig& model, std::string label) const;
  // The last segmentation round's training settings (the configuration defaults before any).
  absl::StatusOr<v1::LocalTrainingConfig> LastSegmentationTraining() const;

  FederatedTrainerOptions options_;
  common::data::Manifest manifest_;
  std::map<std::string, TrainingData> cache_;
  std::optional<v1::LocalTrainingConfig> last_segmentation_training_;
};

}  // namespace fedjoint::site_agent::training
