// Soft Dice loss for multi-class segmentation, in LibTorch's loss shape (options, functional,
// module).
//
// For class c of sample b (or of the whole batch with batch(true)), with p the predicted
// probabilities and t the one-hot (or soft) target, summed over the spatial positions:
//   Dice_bc = (2·Σ p·t + smooth) / max(Σ p + Σ t + smooth, epsilon),   loss_bc = 1 − Dice_bc.
// A class empty in both prediction and target has Dice = smooth/smooth = 1, i.e. loss 0: with the
// default smoothing an absent structure that is correctly not predicted costs nothing. (Soft
// predictions are never exactly empty, so in practice loss_bc ≈ Σp/(Σp + smooth) there, which
// penalizes false positives of absent classes.) With smooth = 0 such a class would give 0/epsilon
// = 0, loss 1; use reduction kMeanPresent to exclude classes absent from the target instead.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/reduction.h"

namespace fedjoint::common::losses {

enum class DiceReduction {
  kMeanAll,      // mean over every (sample, included class) pair
  kMeanPresent,  // mean over the (sample, included class) pairs whose class occurs in the target;
                 // 0 (still differentiable) when no included class occurs anywhere
  kNone,         // per-pair losses, shape [B, C'] ([1, C'] with batch(true)); C' = included classes
};

struct DiceLossOptions {
  // Rejects negative or non-finite smooth/epsilon and smooth = epsilon = 0.
  absl::Status Validate() const;

  // Background is channel 0. Excluding it is usual for small structures in a large field of view.
  TORCH_ARG(bool, include_background) = true;
  // true: the input is logits and softmax runs over the channel axis; false: the input already
  // holds probabilities (e.g. warped one-hot labels in DeepAtlas' anatomy loss).
  TORCH_ARG(bool, softmax) = true;
  // Sum intersections and cardinalities over the batch before dividing (one Dice per class).
  TORCH_ARG(bool, batch) = false;
  TORCH_ARG(DiceReduction, reduction) = DiceReduction::kMeanAll;
  // Added to numerator and denominator (MONAI's smooth_nr = smooth_dr default).
  TORCH_ARG(double, smooth) = 1e-5;
  // Lower bound of the denominator, guarding the division when smooth is 0.
  TORCH_ARG(double, epsilon) = 1e-7;
};

namespace functional {

// input: [B, C, *spatial] logits (or probabilities with softmax(false)), C >= 1.
// target: [B, *spatial] integer class indices in [0, C), or [B, C, *spatial] floating one-hot /
// soft labels. Works for 2D and 3D (any number of spatial dimensions).
at::Tensor dice_loss(const at::Tensor& input, const at::Tensor& target,
                     const DiceLossOptions& options = {});

// Per-(sample, class) soft Dice coefficients [B, C] (or [1, C] with batch), before class
// exclusion and reduction. Exposed for metrics-style use and tests.
at::Tensor soft_dice(const at::Tensor& probabilities, const at::Tensor& one_hot_target, bool batch,
                     double smooth, double epsilon);

// [B, *spatial] integer labels → [B, C, *spatial] float one-hot; a floating [B, C, *spatial]
// target is checked against `num_classes` and returned unchanged. Out-of-range labels throw.
at::Tensor one_hot_target(const at::Tensor& target, int64_t num_classes, at::ScalarType dtype);

}  // namespace functional

class DiceLossImpl : public torch::nn::Cloneable<DiceLossImpl> {
 public:
  explicit DiceLossImpl(const DiceLossOptions& options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& input, const at::Tensor& target);

  DiceLossOptions options;
};
TORCH_MODULE(DiceLoss);

}  // namespace fedjoint::common::losses
