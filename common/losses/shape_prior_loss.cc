#include "common/losses/shape_prior_loss.h"

#include <cmath>
#include <ostream>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/losses/dice_loss.h"
#include "common/losses/reduction.h"

namespace fedjoint::common::losses {

absl::Status ShapePriorLossOptions::Validate() const {
  if (!std::isfinite(weight_) || weight_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ShapePriorLossOptions: weight must be finite and >= 0, got ", weight_));
  }
  return absl::OkStatus();
}

namespace functional {

at::Tensor shape_prior_loss(const at::Tensor& prediction, const at::Tensor& target,
                            const ShapeEncoderFn& encoder, const ShapePriorLossOptions& options) {
  ThrowIfInvalid(options.Validate());
  TORCH_CHECK(encoder, "shape_prior_loss: no encoder given");
  TORCH_CHECK(prediction.dim() >= 3 && at::isFloatingType(prediction.scalar_type()),
              "shape_prior_loss: prediction must be floating [B, C, *spatial], got ",
              prediction.sizes());
  const at::Tensor probabilities = options.softmax() ? prediction.softmax(1) : prediction;
  at::Tensor target_code;
  {
    torch::NoGradGuard no_grad;
    const at::Tensor one_hot = one_hot_target(target, prediction.size(1), prediction.scalar_type());
    TORCH_CHECK(one_hot.sizes() == prediction.sizes(), "shape_prior_loss: target shape ",
                target.sizes(), " does not match prediction shape ", prediction.sizes());
    target_code = encoder(one_hot);
  }
  const at::Tensor predicted_code = encoder(probabilities);
  TORCH_CHECK(predicted_code.sizes() == target_code.sizes(),
              "shape_prior_loss: the encoder returned codes of different shapes ",
              predicted_code.sizes(), " and ", target_code.sizes());
  const int64_t batch = predicted_code.size(0);
  const at::Tensor p = predicted_code.reshape({batch, -1});
  const at::Tensor t = target_code.reshape({batch, -1});
  at::Tensor loss;
  switch (options.form()) {
    case ShapePriorForm::kSquaredL2Mean:
      loss = (p - t).square().mean();
      break;
    case ShapePriorForm::kSquaredL2Sum:
      loss = (p - t).square().sum(1).mean();
      break;
    case ShapePriorForm::kCosine:
      loss = (1.0 - torch::cosine_similarity(p, t, /*dim=*/1, /*eps=*/1e-8)).mean();
      break;
  }
  return options.weight() * loss;
}

}  // namespace functional

ShapePriorLossImpl::ShapePriorLossImpl(torch::nn::AnyModule encoder_,
                                       const ShapePriorLossOptions& options_)
    : options(options_) {
  TORCH_CHECK(!encoder_.is_empty(), "ShapePriorLoss: no encoder module given");
  encoder = encoder_.ptr();
  encode = [any = std::move(encoder_)](const at::Tensor& x) mutable {
    return any.forward<at::Tensor>(x);
  };
  reset();
}

ShapePriorLossImpl::ShapePriorLossImpl(std::shared_ptr<torch::nn::Module> owner,
                                       ShapeEncoderFn encode_,
                                       const ShapePriorLossOptions& options_)
    : options(options_), encoder(std::move(owner)), encode(std::move(encode_)) {
  reset();
}

void ShapePriorLossImpl::reset() {
  ThrowIfInvalid(options.Validate());
  TORCH_CHECK(encoder != nullptr, "ShapePriorLoss: no encoder module given");
  TORCH_CHECK(static_cast<bool>(encode), "ShapePriorLoss: no encode function given");
  register_module("encoder", encoder);
  for (at::Tensor& parameter : encoder->parameters()) parameter.requires_grad_(false);
  encoder->eval();
}

void ShapePriorLossImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (encoder != nullptr) encoder->eval();
}

void ShapePriorLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::ShapePriorLoss(weight=" << options.weight() << ")";
}

at::Tensor ShapePriorLossImpl::forward(const at::Tensor& prediction, const at::Tensor& target) {
  return functional::shape_prior_loss(prediction, target, encode, options);
}

}  // namespace fedjoint::common::losses
