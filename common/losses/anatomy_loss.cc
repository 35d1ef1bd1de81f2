#include "common/losses/anatomy_loss.h"

#include <ostream>

#include <torch/torch.h>

#include "common/base/status.h"

namespace fedjoint::common::losses {

DiceLossOptions AnatomyLossOptions::ToDiceOptions() const {
  return DiceLossOptions()
      .include_background(include_background_)
      .softmax(false)
      .batch(batch_)
      .reduction(reduction_)
      .smooth(smooth_)
      .epsilon(epsilon_);
}

absl::Status AnatomyLossOptions::Validate() const {
  return base::Annotate(ToDiceOptions().Validate(), "AnatomyLossOptions");
}

namespace functional {

at::Tensor anatomy_loss(const at::Tensor& warped, const at::Tensor& target,
                        const AnatomyLossOptions& options) {
  return dice_loss(warped, target, options.ToDiceOptions());
}

}  // namespace functional

AnatomyLossImpl::AnatomyLossImpl(const AnatomyLossOptions& options_) : options(options_) {
  reset();
}

void AnatomyLossImpl::reset() { ThrowIfInvalid(options.Validate()); }

void AnatomyLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::AnatomyLoss(include_background=" << options.include_background() << ")";
}

at::Tensor AnatomyLossImpl::forward(const at::Tensor& warped, const at::Tensor& target) {
  return functional::anatomy_loss(warped, target, options);
}

}  // namespace fedjoint::common::losses
