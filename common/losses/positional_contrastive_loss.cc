#include "common/losses/positional_contrastive_loss.h"

#include <cmath>
#include <ostream>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"

namespace fedjoint::common::losses {

absl::Status PositionalContrastiveLossOptions::Validate() const {
  if (!std::isfinite(threshold_) || threshold_ <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PositionalContrastiveLossOptions: threshold must be finite and > 0, got ", threshold_));
  }
  return base::Annotate(supcon_.Validate(), "PositionalContrastiveLossOptions.supcon");
}

namespace functional {

at::Tensor positional_positive_mask(const at::Tensor& positions, double threshold) {
  TORCH_CHECK(positions.dim() == 1 && at::isFloatingType(positions.scalar_type()),
              "positional_positive_mask: positions must be a 1-D floating tensor, got ",
              positions.scalar_type(), " ", positions.sizes());
  const at::Tensor p = positions.to(at::kDouble);
  at::Tensor mask = (p.unsqueeze(1) - p.unsqueeze(0)).abs() < threshold;
  mask.fill_diagonal_(false);
  return mask;
}

at::Tensor positional_contrastive_loss(const at::Tensor& z, const at::Tensor& positions,
                                       const PositionalContrastiveLossOptions& options) {
  ThrowIfInvalid(options.Validate());
  TORCH_CHECK(z.dim() == 2 && positions.dim() == 1 && positions.size(0) == z.size(0),
              "positional_contrastive_loss: ", positions.sizes(), " positions for embeddings ",
              z.sizes());
  return supcon_loss_with_mask(z, positional_positive_mask(positions, options.threshold()),
                               options.supcon());
}

}  // namespace functional

PositionalContrastiveLossImpl::PositionalContrastiveLossImpl(
    const PositionalContrastiveLossOptions& options_)
    : options(options_) {
  reset();
}

void PositionalContrastiveLossImpl::reset() { ThrowIfInvalid(options.Validate()); }

void PositionalContrastiveLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::PositionalContrastiveLoss(threshold=" << options.threshold()
         << ", temperature=" << options.supcon().temperature() << ")";
}

at::Tensor PositionalContrastiveLossImpl::forward(const at::Tensor& z,
                                                  const at::Tensor& positions) {
  return functional::positional_contrastive_loss(z, positions, options);
}

}  // namespace fedjoint::common::losses
