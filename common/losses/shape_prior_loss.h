// Anatomical shape prior (Boutillon et al.): a shape auto-encoder trained beforehand on
// ground-truth masks gives a shape code E(·); the segmentation is pushed to have the code of its
// truth: L_shape = weight · D(E(softmax(ŷ)), E(onehot(y))).
//
// E is frozen: gradients reach ŷ through E but never E's parameters. ShapePriorLoss enforces this
// (it sets requires_grad(false) on the encoder's parameters and keeps it in eval mode even when
// the loss module is put in train mode); the functional form takes any callable and leaves
// freezing to the caller. The truth's code is computed under NoGradGuard.
#pragma once

#include <functional>
#include <memory>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"

namespace fedjoint::common::losses {

enum class ShapePriorForm {
  kSquaredL2Mean,  // mean over batch and code elements of (E(p) − E(t))²
  kSquaredL2Sum,   // ‖E(p) − E(t)‖² summed over the code, mean over the batch
  kCosine,         // 1 − cos(E(p), E(t)) per sample (codes flattened), mean over the batch
};

struct ShapePriorLossOptions {
  // weight must be finite and >= 0.
  absl::Status Validate() const;

  TORCH_ARG(ShapePriorForm, form) = ShapePriorForm::kSquaredL2Mean;
  TORCH_ARG(double, weight) = 1.0;
  // true: the prediction is logits (softmax over channels); false: already probabilities.
  TORCH_ARG(bool, softmax) = true;
};

// Maps [B, C, *spatial] probabilities to codes [B, ...].
using ShapeEncoderFn = std::function<at::Tensor(const at::Tensor&)>;

namespace functional {

// prediction: [B, C, *spatial] logits (or probabilities); target: [B, *spatial] indices or
// [B, C, *spatial] one-hot.
at::Tensor shape_prior_loss(const at::Tensor& prediction, const at::Tensor& target,
                            const ShapeEncoderFn& encoder,
                            const ShapePriorLossOptions& options = {});

}  // namespace functional

class ShapePriorLossImpl : public torch::nn::Cloneable<ShapePriorLossImpl> {
 public:
  // `encoder` must have forward(Tensor) -> Tensor giving the code.
  explicit ShapePriorLossImpl(torch::nn::AnyModule encoder,
                              const ShapePriorLossOptions& options = {});
  // For modules whose code is not their forward(), e.g. a shape auto-encoder:
  //   ShapePriorLoss(ae.ptr(), [ae](const at::Tensor& p) { return ae->encode(pad(p)); })
  // `owner` holds E's parameters; `encode` computes the code.
  ShapePriorLossImpl(std::shared_ptr<torch::nn::Module> owner, ShapeEncoderFn encode,
                     const ShapePriorLossOptions& options = {});
  // Registers the encoder as submodule "encoder" (so to(device) moves it), sets
  // requires_grad(false) on its parameters and puts it in eval mode.
  void reset() override;
  // Keeps the encoder in eval mode whatever `on` is (its batch norms must not update).
  void train(bool on = true) override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& prediction, const at::Tensor& target);

  ShapePriorLossOptions options;
  std::shared_ptr<torch::nn::Module> encoder;
  ShapeEncoderFn encode;
};
TORCH_MODULE(ShapePriorLoss);

}  // namespace fedjoint::common::losses
