// DeepAtlas anatomy loss L_a: soft multi-class Dice between the warped moving labels
// S_m∘Φ⁻¹ (one-hot labels resampled bilinearly: probabilities, not logits) and the target labels
// S_t (or the segmentation net's prediction F_S(I_t) when the target is unlabeled). It is
// DiceLoss with softmax off; see dice_loss.h for the exact formula and empty-class behaviour.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/dice_loss.h"

namespace fedjoint::common::losses {

struct AnatomyLossOptions {
  absl::Status Validate() const;
  // The equivalent Dice options (softmax off).
  DiceLossOptions ToDiceOptions() const;

  TORCH_ARG(bool, include_background) = true;
  TORCH_ARG(bool, batch) = false;
  TORCH_ARG(DiceReduction, reduction) = DiceReduction::kMeanAll;
  TORCH_ARG(double, smooth) = 1e-5;
  TORCH_ARG(double, epsilon) = 1e-7;
};

namespace functional {

// warped: [B, C, *spatial] probabilities (each voxel's channels summing to 1 up to interpolation).
// target: [B, *spatial] indices, or [B, C, *spatial] probabilities (e.g. softmax(F_S(I_t))).
at::Tensor anatomy_loss(const at::Tensor& warped, const at::Tensor& target,
                        const AnatomyLossOptions& options = {});

}  // namespace functional

class AnatomyLossImpl : public torch::nn::Cloneable<AnatomyLossImpl> {
 public:
  explicit AnatomyLossImpl(const AnatomyLossOptions& options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& warped, const at::Tensor& target);

  AnatomyLossOptions options;
};
TORCH_MODULE(AnatomyLoss);

}  // namespace fedjoint::common::losses
