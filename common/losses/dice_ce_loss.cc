#include "common/losses/dice_ce_loss.h"

#include <cmath>
#include <ostream>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"

namespace fedjoint::common::losses {

absl::Status DiceCELossOptions::Validate() const {
  if (absl::Status status = dice_.Validate(); !status.ok()) {
    return base::Annotate(status, "DiceCELossOptions.dice");
  }
  if (absl::Status status = cross_entropy_.Validate(); !status.ok()) {
    return base::Annotate(status, "DiceCELossOptions.cross_entropy");
  }
  if (!dice_.softmax()) {
    return absl::InvalidArgumentError(
        "DiceCELossOptions: dice.softmax(false) conflicts with cross-entropy, which takes "
        "logits; DiceCE always applies softmax for its Dice part");
  }
  if (dice_.reduction() == DiceReduction::kNone || cross_entropy_.reduction() == Reduction::kNone) {
    return absl::InvalidArgumentError(
        "DiceCELossOptions: unreduced parts cannot be summed (Dice is per class, cross-entropy "
        "per voxel); use kMeanAll/kMeanPresent and kMean/kSum");
  }
  if (cross_entropy_.ignore_index() != -100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DiceCELossOptions: cross_entropy.ignore_index(", cross_entropy_.ignore_index(),
        ") is not supported: the Dice part has no notion of ignored voxels"));
  }
  if (!std::isfinite(lambda_dice_) || !std::isfinite(lambda_ce_) || lambda_dice_ < 0 ||
      lambda_ce_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiceCELossOptions: lambda_dice and lambda_ce must be finite and >= 0, got ",
                     lambda_dice_, " and ", lambda_ce_));
  }
  if (lambda_dice_ == 0 && lambda_ce_ == 0) {
    return absl::InvalidArgumentError(
        "DiceCELossOptions: lambda_dice and lambda_ce are both 0, the loss would be constant");
  }
  return absl::OkStatus();
}

namespace functional {

at::Tensor dice_ce_loss(const at::Tensor& input, const at::Tensor& target,
                        const DiceCELossOptions& options) {
  ThrowIfInvalid(options.Validate());
  return options.lambda_dice() * dice_loss(input, target, options.dice()) +
         options.lambda_ce() * cross_entropy_loss(input, target, options.cross_entropy());
}

}  // namespace functional

DiceCELossImpl::DiceCELossImpl(const DiceCELossOptions& options_) : options(options_) { reset(); }

void DiceCELossImpl::reset() {
  ThrowIfInvalid(options.Validate());
  dice = register_module("dice", DiceLoss(options.dice()));
  cross_entropy = register_module("cross_entropy", CrossEntropyLoss(options.cross_entropy()));
}

void DiceCELossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::DiceCELoss(lambda_dice=" << options.lambda_dice()
         << ", lambda_ce=" << options.lambda_ce() << ")";
}

at::Tensor DiceCELossImpl::forward(const at::Tensor& input, const at::Tensor& target) {
  return options.lambda_dice() * dice->forward(input, target) +
         options.lambda_ce() * cross_entropy->forward(input, target);
}

}  // namespace fedjoint::common::losses
