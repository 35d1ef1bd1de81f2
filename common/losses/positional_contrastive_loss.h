// Positional contrastive loss (Zeng et al., MICCAI 2021) for self-supervised pretraining on
// unlabeled volumes: slices at similar relative positions in their volumes are positives.
// pos = (slice index + 1) / slices in the volume; i and j are positives when |pos_i − pos_j| < θ
// (the two augmented views of one slice share a position, so they always are, for any θ > 0).
// The loss is SupCon (supcon_loss.h) with that positive mask.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/supcon_loss.h"

namespace fedjoint::common::losses {

struct PositionalContrastiveLossOptions {
  // threshold must be finite and > 0 (else two views of one slice would not be positives).
  absl::Status Validate() const;

  // θ: 0.35 is the public code's value for MR (0.1 for CT hearts).
  TORCH_ARG(double, threshold) = 0.35;
  TORCH_ARG(SupConLossOptions, supcon) = SupConLossOptions().temperature(0.1);
};

namespace functional {

// positions: [N] floating relative positions. Returns [N, N] bool, |pos_i − pos_j| < threshold,
// diagonal false.
at::Tensor positional_positive_mask(const at::Tensor& positions, double threshold);

// z: [N, D] projected embeddings; positions: [N].
at::Tensor positional_contrastive_loss(const at::Tensor& z, const at::Tensor& positions,
                                       const PositionalContrastiveLossOptions& options = {});

}  // namespace functional

class PositionalContrastiveLossImpl : public torch::nn::Cloneable<PositionalContrastiveLossImpl> {
 public:
  explicit PositionalContrastiveLossImpl(const PositionalContrastiveLossOptions& options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& z, const at::Tensor& positions);

  PositionalContrastiveLossOptions options;
};
TORCH_MODULE(PositionalContrastiveLoss);

}  // namespace fedjoint::common::losses
