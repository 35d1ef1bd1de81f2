#include "common/losses/ncc_loss.h"

#include <cmath>
#include <ostream>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::losses {

absl::Status NccLossOptions::Validate() const {
  if (window_ != 0 && (window_ < 3 || window_ % 2 == 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NccLossOptions: window must be 0 (global) or an odd size >= 3, got ", window_));
  }
  if (!std::isfinite(epsilon_) || epsilon_ <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NccLossOptions: epsilon must be finite and > 0 (constant images divide by it), got ",
        epsilon_));
  }
  return absl::OkStatus();
}

namespace functional {
namespace {

at::Tensor GlobalNcc(const at::Tensor& a, const at::Tensor& b, double epsilon) {
  const int64_t batch = a.size(0);
  const at::Tensor x = a.reshape({batch, -1});
  const at::Tensor y = b.reshape({batch, -1});
  const at::Tensor dx = x - x.mean(1, /*keepdim=*/true);
  const at::Tensor dy = y - y.mean(1, /*keepdim=*/true);
  return (dx * dy).sum(1) / (dx.square().sum(1) * dy.square().sum(1) + epsilon).sqrt();
}

at::Tensor LocalNcc(const at::Tensor& a, const at::Tensor& b, int64_t window, double epsilon) {
  const int64_t spatial = a.dim() - 2;
  TORCH_CHECK(spatial == 2 || spatial == 3, "ncc: local windows need 2D or 3D images, got shape ",
              a.sizes());
  for (int64_t d = 2; d < a.dim(); ++d) {
    TORCH_CHECK(a.size(d) >= window, "ncc: window ", window, " larger than the image ", a.sizes());
  }
  // Window means via average pooling, stride 1, no padding: only windows inside the image.
  auto mean = [&](const at::Tensor& t) {
    return spatial == 2 ? torch::avg_pool2d(t, window, /*stride=*/1)
                        : torch::avg_pool3d(t, window, /*stride=*/1);
  };
  const at::Tensor mean_a = mean(a);
  const at::Tensor mean_b = mean(b);
  const at::Tensor cross = mean(a * b) - mean_a * mean_b;
  const at::Tensor var_a = (mean(a * a) - mean_a.square()).clamp_min(0);
  const at::Tensor var_b = (mean(b * b) - mean_b.square()).clamp_min(0);
  const at::Tensor cc = cross / (var_a * var_b + epsilon).sqrt();
  return cc.reshape({a.size(0), -1}).mean(1);
}

}  // namespace

at::Tensor ncc(const at::Tensor& a, const at::Tensor& b, const NccLossOptions& options) {
  ThrowIfInvalid(options.Validate());
  TORCH_CHECK(a.sizes() == b.sizes(), "ncc: image shapes differ: ", a.sizes(), " vs ", b.sizes());
  TORCH_CHECK(a.dim() >= 3 && at::isFloatingType(a.scalar_type()),
              "ncc: images must be floating [B, C, *spatial], got ", a.sizes());
  return options.window() == 0 ? GlobalNcc(a, b, options.epsilon())
                               : LocalNcc(a, b, options.window(), options.epsilon());
}

at::Tensor ncc_loss(const at::Tensor& a, const at::Tensor& b, const NccLossOptions& options) {
  return Reduce(1.0 - ncc(a, b, options), options.reduction());
}

}  // namespace functional

NccLossImpl::NccLossImpl(const NccLossOptions& options_) : options(options_) { reset(); }

void NccLossImpl::reset() { ThrowIfInvalid(options.Validate()); }

void NccLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::NccLoss(window=" << options.window() << ")";
}

at::Tensor NccLossImpl::forward(const at::Tensor& a, const at::Tensor& b) {
  return functional::ncc_loss(a, b, options);
}

}  // namespace fedjoint::common::losses
