// Trains the shape auto-encoder of the shape-prior loss (METHODS.md §1, "multi-joint anatomical
// priors") to reconstruct ground-truth masks: input the one-hot mask of a slice (padded to the
// channels of the joint with the most structures), output reconstruction logits, loss CE or
// Dice+CE against the mask (LossConfig.reconstruction). Its frozen encoder then regularizes the
// segmentation network (SegmentationTrainer::SetShapePrior). Validation reports the
// reconstruction Dice per structure: a code that cannot reconstruct a bone cannot constrain it.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/model/shape_autoencoder.h"
#include "common/tensors/torch_tensors.h"
#include "site_agent/training/segmentation_trainer.h"
#include "site_agent/training/training_data.h"

namespace fedjoint::site_agent::training {

class ShapePriorTrainer {
 public:
  // options.model.architecture must be "shape_autoencoder" (its joints give the channel layout).
  static absl::StatusOr<std::unique_ptr<ShapePriorTrainer>> Create(TrainerOptions options,
                                                                   TrainingData data);
  ~ShapePriorTrainer();

  absl::Status LoadWeights(const common::tensors::TensorMap& weights);
  absl::StatusOr<TrainSummary> Train();
  absl::StatusOr<ValidationResult> Validate();
  common::tensors::TensorMap Weights() const;
  common::model::ShapeAutoEncoder model() const;

 private:
  struct State;
  explicit ShapePriorTrainer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace fedjoint::site_agent::training
