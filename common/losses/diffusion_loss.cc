#include "common/losses/diffusion_loss.h"

#include <ostream>

#include <torch/torch.h>

namespace fedjoint::common::losses {
namespace functional {

at::Tensor diffusion_loss(const at::Tensor& displacement) {
  const int64_t spatial = displacement.dim() - 2;
  TORCH_CHECK((spatial == 2 || spatial == 3) && displacement.size(1) == spatial &&
                  at::isFloatingType(displacement.scalar_type()),
              "diffusion_loss: displacement must be floating [B, 2, H, W] or [B, 3, D, H, W], got ",
              displacement.sizes());
  at::Tensor total = displacement.sum() * 0.0;
  for (int64_t d = 2; d < displacement.dim(); ++d) {
    const int64_t n = displacement.size(d);
    if (n < 2) continue;  // no difference along a one-voxel axis
    const at::Tensor diff = displacement.narrow(d, 1, n - 1) - displacement.narrow(d, 0, n - 1);
    // Mean over batch and voxels, sum over the components c.
    total = total + diff.square().mean() * static_cast<double>(spatial);
  }
  return total;
}

}  // namespace functional

void DiffusionLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::DiffusionLoss()";
}

at::Tensor DiffusionLossImpl::forward(const at::Tensor& displacement) {
  return functional::diffusion_loss(displacement);
}

}  // namespace fedjoint::common::losses
