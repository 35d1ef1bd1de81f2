#include "common/losses/dice_loss.h"

#include <cmath>
#include <ostream>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::losses {

absl::Status DiceLossOptions::Validate() const {
  if (!std::isfinite(smooth_) || smooth_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiceLossOptions: smooth must be finite and >= 0, got ", smooth_));
  }
  if (!std::isfinite(epsilon_) || epsilon_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiceLossOptions: epsilon must be finite and >= 0, got ", epsilon_));
  }
  if (smooth_ == 0 && epsilon_ == 0) {
    return absl::InvalidArgumentError(
        "DiceLossOptions: smooth and epsilon are both 0, so a class empty in prediction and "
        "target divides 0 by 0; set smooth > 0 (default 1e-5) or epsilon > 0");
  }
  return absl::OkStatus();
}

namespace functional {

at::Tensor one_hot_target(const at::Tensor& target, int64_t num_classes, at::ScalarType dtype) {
  TORCH_CHECK(num_classes >= 1, "one_hot_target: num_classes must be >= 1, got ", num_classes);
  if (at::isFloatingType(target.scalar_type())) {
    TORCH_CHECK(target.dim() >= 2 && target.size(1) == num_classes,
                "one_hot_target: a floating target must be one-hot [B, C=", num_classes,
                ", *spatial], got shape ", target.sizes());
    return target.to(dtype);
  }
  TORCH_CHECK(!target.is_complex() && target.scalar_type() != at::kBool,
              "one_hot_target: integer class-index target expected, got ", target.scalar_type());
  at::Tensor labels = target.to(at::kLong);
  if (labels.numel() > 0) {
    const int64_t low = labels.min().item<int64_t>();
    const int64_t high = labels.max().item<int64_t>();
    TORCH_CHECK(low >= 0 && high < num_classes, "one_hot_target: labels must lie in [0, ",
                num_classes, "), got values in [", low, ", ", high, "]");
  }
  // [B, *spatial, C] → [B, C, *spatial]
  at::Tensor one_hot = torch::one_hot(labels, num_classes).to(dtype);
  return one_hot.movedim(-1, 1);
}

at::Tensor soft_dice(const at::Tensor& probabilities, const at::Tensor& one_hot_target, bool batch,
                     double smooth, double epsilon) {
  TORCH_CHECK(probabilities.sizes() == one_hot_target.sizes(), "soft_dice: probabilities ",
              probabilities.sizes(), " and target ", one_hot_target.sizes(),
              " must have the same shape");
  std::vector<int64_t> dims;
  if (batch) dims.push_back(0);
  for (int64_t d = 2; d < probabilities.dim(); ++d) dims.push_back(d);
  const bool keep = false;
  at::Tensor intersection = (probabilities * one_hot_target).sum(dims, keep);
  at::Tensor cardinality = probabilities.sum(dims, keep) + one_hot_target.sum(dims, keep);
  at::Tensor dice = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(epsilon);
  return batch ? dice.unsqueeze(0) : dice;
}

at::Tensor dice_loss(const at::Tensor& input, const at::Tensor& target,
                     const DiceLossOptions& options) {
  ThrowIfInvalid(options.Validate());
  TORCH_CHECK(input.dim() >= 3, "dice_loss: input must be [B, C, *spatial], got shape ",
              input.sizes());
  TORCH_CHECK(at::isFloatingType(input.scalar_type()), "dice_loss: input must be floating, got ",
              input.scalar_type());
  const int64_t num_classes = input.size(1);
  const int64_t first_class = options.include_background() ? 0 : 1;
  TORCH_CHECK(num_classes > first_class, "dice_loss: include_background(false) needs at least 2 ",
              "channels, input has ", num_classes);
  at::Tensor one_hot = one_hot_target(target, num_classes, input.scalar_type());
  TORCH_CHECK(one_hot.sizes() == input.sizes(), "dice_loss: target shape ", target.sizes(),
              " does not match input shape ", input.sizes());

  at::Tensor probabilities = options.softmax() ? input.softmax(1) : input;
  at::Tensor dice =
      soft_dice(probabilities, one_hot, options.batch(), options.smooth(), options.epsilon());
  at::Tensor loss = 1.0 - dice.slice(1, first_class);  // [B or 1, C']

  switch (options.reduction()) {
    case DiceReduction::kNone:
      return loss;
    case DiceReduction::kMeanAll:
      return loss.mean();
    case DiceReduction::kMeanPresent: {
      std::vector<int64_t> dims;
      if (options.batch()) dims.push_back(0);
      for (int64_t d = 2; d < one_hot.dim(); ++d) dims.push_back(d);
      at::Tensor class_sums = one_hot.sum(dims);  // [B, C], or [C] with batch
      if (options.batch()) class_sums = class_sums.unsqueeze(0);
      const at::Tensor present = class_sums.slice(1, first_class) > 0;
      const at::Tensor count = present.sum();
      // Multiplying (not indexing) keeps the graph connected when nothing is present.
      return (loss * present).sum() / count.clamp_min(1);
    }
  }
  TORCH_CHECK(false, "dice_loss: unknown DiceReduction ", static_cast<int>(options.reduction()));
}

}  // namespace functional

DiceLossImpl::DiceLossImpl(const DiceLossOptions& options_) : options(options_) { reset(); }

void DiceLossImpl::reset() { ThrowIfInvalid(options.Validate()); }

void DiceLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::DiceLoss(include_background=" << options.include_background()
         << ", softmax=" << options.softmax() << ", batch=" << options.batch()
         << ", smooth=" << options.smooth() << ")";
}

at::Tensor DiceLossImpl::forward(const at::Tensor& input, const at::Tensor& target) {
  return functional::dice_loss(input, target, options);
}

}  // namespace fedjoint::common::losses
