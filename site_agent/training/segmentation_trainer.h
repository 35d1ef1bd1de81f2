// Trains the multi-domain segmentation U-Net (Boutillon et al. 2022, METHODS.md §1) on a site's
// slices:
//
//   L = DiceCE over each sample's own joint head                    (segmentation)
//     + λ_c · mean over scales of SupCon(domain as class)            (multi-scale contrastive)
//     + λ_s · ||E(softmax(ŷ)) − E(onehot(y))||² (mean)               (shape prior)
//     + μ/2 · ||w − w_start||²                                        (FedProx, when μ > 0)
//
// SupCon's negatives are the other joints' samples of the batch and, in a federation, the other
// domains' prototypes sent with the task (a site usually holds one joint). The shape prior uses
// the frozen encoder E of a shape auto-encoder trained beforehand (ShapePriorTrainer, or a
// previous federated phase); without one the term is skipped, with a log line saying so. Choices
// the paper leaves open are in docs/methods.md.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/unet.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/config.pb.h"
#include "fedjoint/v1/federation.pb.h"
#include "site_agent/training/trainer_options.h"
#include "site_agent/training/training_data.h"

namespace fedjoint::site_agent::training {

class SegmentationTrainer {
 public:
  // Builds the network (deterministic init), the optimizer and the loss. `data.train` must hold
  // slices; `data.validation` may be empty.
  static absl::StatusOr<std::unique_ptr<SegmentationTrainer>> Create(TrainerOptions options,
                                                                     TrainingData data);
  ~SegmentationTrainer();

  // Replaces the network's weights (strict: every name with its shape; the error lists the
  // missing, unexpected and mismatched tensors).
  absl::Status LoadWeights(const common::tensors::TensorMap& weights);
  // Shape auto-encoder weights whose frozen encoder gives the shape-prior loss. Its channel
  // layout must fit the model's joints (PaddedShapeChannels).
  absl::Status SetShapePrior(const common::tensors::TensorMap& autoencoder);
  bool has_shape_prior() const;
  // Other domains' (and this domain's global) prototypes, joining SupCon's denominators. Unknown
  // domains and scales are ignored (logged); a domain must have every scale of the model.
  absl::Status SetExternalPrototypes(std::span<const v1::Prototype> prototypes);

  absl::StatusOr<TrainSummary> Train();
  absl::StatusOr<ValidationResult> Validate();
  // Per joint with training slices and per projection stage (Prototype::scale = stage number,
  // 0 = stem .. 4 = layer4): the mean of the L2-normalized projected embeddings of every training
  // slice (eval mode, no augmentation), L2-normalized; count = slices.
  absl::StatusOr<std::vector<v1::Prototype>> ComputePrototypes();
  // Re-estimates the running statistics of each joint's normalization layers for the current
  // weights: `batches` batches drawn as training draws them (options().training: batch size,
  // domain balance, foreground oversampling, augmentation), BatchNorm in training mode without
  // gradients, a cumulative average of the batches' moments (not the exponential one). Nothing
  // else changes. Needed after federated averaging: the statistics a site kept were gathered with
  // its own pre-averaging weights, and in eval mode they no longer match the averaged network's
  // activations (the demo's federated model scored Dice ~0 with them).
  absl::Status RecalibrateNormalization(int64_t batches = 100);

  // The optimizer's state (AdamW moments...), kept at a site from one federated round to the next
  // (OptimizerConfig.keep_state_across_rounds). Load before Train(); the state must be of an
  // optimizer over the same parameters (same model, same frozen set).
  absl::Status SaveOptimizerState(const std::filesystem::path& path);
  absl::Status LoadOptimizerState(const std::filesystem::path& path);

  common::tensors::TensorMap Weights() const;
  common::model::UNet model() const;
  const TrainingData& data() const;
  const TrainerOptions& options() const;

 private:
  struct State;
  explicit SegmentationTrainer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace fedjoint::site_agent::training
