// lambda_dice · Dice + lambda_ce · cross-entropy on the same logits and target: the usual
// segmentation loss (Dice copes with class imbalance, CE gives well-behaved early gradients).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/cross_entropy_loss.h"
#include "common/losses/dice_loss.h"

namespace fedjoint::common::losses {

struct DiceCELossOptions {
  // Beyond each part's own checks, rejects combinations that cannot be summed or that the two
  // parts would read differently: dice.softmax(false) (CE needs logits, so both must take
  // logits), unreduced parts (Dice is per class, CE per voxel), ignore_index (Dice has no notion
  // of ignored voxels), and negative, non-finite or both-zero lambdas.
  absl::Status Validate() const;

  TORCH_ARG(DiceLossOptions, dice) = {};
  TORCH_ARG(CrossEntropyLossOptions, cross_entropy) = {};
  TORCH_ARG(double, lambda_dice) = 1.0;
  TORCH_ARG(double, lambda_ce) = 1.0;
};

namespace functional {

// input: [B, C, *spatial] logits; target as for dice_loss/cross_entropy_loss. Returns a scalar.
at::Tensor dice_ce_loss(const at::Tensor& input, const at::Tensor& target,
                        const DiceCELossOptions& options = {});

}  // namespace functional

class DiceCELossImpl : public torch::nn::Cloneable<DiceCELossImpl> {
 public:
  explicit DiceCELossImpl(const DiceCELossOptions& options = {});
  // Submodules "dice" and "cross_entropy" (the CE class weights follow to(device)).
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& input, const at::Tensor& target);

  DiceCELossOptions options;
  DiceLoss dice{nullptr};
  CrossEntropyLoss cross_entropy{nullptr};
};
TORCH_MODULE(DiceCELoss);

}  // namespace fedjoint::common::losses
