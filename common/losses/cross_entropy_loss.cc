#include "common/losses/cross_entropy_loss.h"

#include <cmath>
#include <ostream>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::losses {

absl::Status CrossEntropyLossOptions::Validate() const {
  if (!std::isfinite(label_smoothing_) || label_smoothing_ < 0 || label_smoothing_ > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CrossEntropyLossOptions: label_smoothing must lie in [0, 1], got ", label_smoothing_));
  }
  if (weight_.defined()) {
    if (weight_.dim() != 1 || !at::isFloatingType(weight_.scalar_type())) {
      return absl::InvalidArgumentError(
          "CrossEntropyLossOptions: weight must be a 1-D floating tensor with one value per "
          "class");
    }
    if (weight_.numel() > 0 && weight_.min().item<double>() < 0) {
      return absl::InvalidArgumentError("CrossEntropyLossOptions: class weights must be >= 0");
    }
  }
  return absl::OkStatus();
}

namespace functional {

at::Tensor cross_entropy_loss(const at::Tensor& input, const at::Tensor& target,
                              const CrossEntropyLossOptions& options) {
  ThrowIfInvalid(options.Validate());
  TORCH_CHECK(input.dim() >= 2, "cross_entropy_loss: input must be [B, C, *spatial], got shape ",
              input.sizes());
  if (options.weight().defined()) {
    TORCH_CHECK(options.weight().numel() == input.size(1),
                "cross_entropy_loss: ", options.weight().numel(), " class weights for ",
                input.size(1), " classes");
  }
  namespace F = torch::nn::functional;
  // torch's weighted mean divides by the summed weights of the non-ignored targets; keep that by
  // letting torch reduce.
  F::CrossEntropyFuncOptions::reduction_t reduction = torch::kMean;
  if (options.reduction() == Reduction::kSum) reduction = torch::kSum;
  if (options.reduction() == Reduction::kNone) reduction = torch::kNone;
  auto torch_options = F::CrossEntropyFuncOptions()
                           .ignore_index(options.ignore_index())
                           .label_smoothing(options.label_smoothing())
                           .reduction(reduction);
  if (options.weight().defined()) torch_options.weight(options.weight().to(input.options()));
  if (at::isFloatingType(target.scalar_type())) {
    TORCH_CHECK(target.sizes() == input.sizes(), "cross_entropy_loss: probability target shape ",
                target.sizes(), " does not match input shape ", input.sizes());
    TORCH_CHECK(options.ignore_index() == -100,
                "cross_entropy_loss: ignore_index needs integer targets, got a probability target");
    return F::cross_entropy(input, target.to(input.scalar_type()), torch_options);
  }
  TORCH_CHECK(target.dim() == input.dim() - 1, "cross_entropy_loss: integer target must be [B, ",
              "*spatial] for input ", input.sizes(), ", got ", target.sizes());
  return F::cross_entropy(input, target.to(at::kLong), torch_options);
}

}  // namespace functional

CrossEntropyLossImpl::CrossEntropyLossImpl(const CrossEntropyLossOptions& options_)
    : options(options_) {
  reset();
}

void CrossEntropyLossImpl::reset() {
  ThrowIfInvalid(options.Validate());
  if (options.weight().defined()) weight = register_buffer("weight", options.weight());
}

void CrossEntropyLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::CrossEntropyLoss(ignore_index=" << options.ignore_index()
         << ", label_smoothing=" << options.label_smoothing() << ")";
}

at::Tensor CrossEntropyLossImpl::forward(const at::Tensor& input, const at::Tensor& target) {
  CrossEntropyLossOptions current = options;
  if (weight.defined()) current.weight(weight);  // the buffer follows to(device)
  return functional::cross_entropy_loss(input, target, current);
}

}  // namespace fedjoint::common::losses
