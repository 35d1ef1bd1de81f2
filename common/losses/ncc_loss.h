// Image similarity for registration (DeepAtlas L_i): 1 − NCC between the warped moving image and
// the target image, per sample, then reduced over the batch.
//   global (window 0): NCC = Σ(a−ā)(b−b̄) / sqrt(Σ(a−ā)² · Σ(b−b̄)² + epsilon) over each sample's
//     channels and voxels;
//   local (odd window w): the same correlation in every w^d window that fits inside the image
//     (no padding), averaged over windows and channels.
// NCC ∈ [−1, 1]: identical images give 1 (loss 0), an image and its negation −1 (loss 2). The
// local form keeps the sign (VoxelMorph squares the local correlation, which would score a
// negated image as a perfect match). A constant image has no correlation: NCC = 0, loss 1.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/reduction.h"

namespace fedjoint::common::losses {

struct NccLossOptions {
  absl::Status Validate() const;

  // 0 = global NCC; otherwise an odd window side >= 3 (2D and 3D images).
  TORCH_ARG(int64_t, window) = 0;
  TORCH_ARG(double, epsilon) = 1e-5;
  // kNone gives [B].
  TORCH_ARG(Reduction, reduction) = Reduction::kMean;
};

namespace functional {

// a, b: [B, C, *spatial] images of the same shape (2 or 3 spatial dims for local windows).
// Returns NCC per sample, [B].
at::Tensor ncc(const at::Tensor& a, const at::Tensor& b, const NccLossOptions& options = {});

// 1 − ncc(a, b), reduced.
at::Tensor ncc_loss(const at::Tensor& a, const at::Tensor& b, const NccLossOptions& options = {});

}  // namespace functional

class NccLossImpl : public torch::nn::Cloneable<NccLossImpl> {
 public:
  explicit NccLossImpl(const NccLossOptions& options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& a, const at::Tensor& b);

  NccLossOptions options;
};
TORCH_MODULE(NccLoss);

}  // namespace fedjoint::common::losses
