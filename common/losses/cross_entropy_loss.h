// Cross-entropy over logits, wrapping torch's, with the same target conventions as DiceLoss
// (integer class indices or one-hot/soft labels) so the two combine without conversions.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/reduction.h"

namespace fedjoint::common::losses {

struct CrossEntropyLossOptions {
  absl::Status Validate() const;

  // Optional per-class weights [C] (>= 0); undefined = all 1.
  TORCH_ARG(at::Tensor, weight) = {};
  // Integer targets equal to this value contribute nothing (torch's default -100 = none).
  TORCH_ARG(int64_t, ignore_index) = -100;
  // In [0, 1]: the target mixes with the uniform distribution by this amount.
  TORCH_ARG(double, label_smoothing) = 0.0;
  // kNone gives [B, *spatial].
  TORCH_ARG(Reduction, reduction) = Reduction::kMean;
};

namespace functional {

// input: [B, C, *spatial] logits. target: [B, *spatial] integer indices, or [B, C, *spatial]
// floating class probabilities (one-hot); ignore_index cannot be used with probability targets.
at::Tensor cross_entropy_loss(const at::Tensor& input, const at::Tensor& target,
                              const CrossEntropyLossOptions& options = {});

}  // namespace functional

class CrossEntropyLossImpl : public torch::nn::Cloneable<CrossEntropyLossImpl> {
 public:
  explicit CrossEntropyLossImpl(const CrossEntropyLossOptions& options = {});
  // Registers the class weights as buffer "weight" so to(device) moves them.
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& input, const at::Tensor& target);

  CrossEntropyLossOptions options;
  at::Tensor weight;
};
TORCH_MODULE(CrossEntropyLoss);

}  // namespace fedjoint::common::losses
