// Diffusion regularizer of a displacement field (DeepAtlas L_r): the mean over voxels of
// ‖∇u‖² = Σ_c Σ_d (∂u_c/∂x_d)², with forward differences in voxel units. The differences along
// axis d exist on one voxel fewer along d, so each (c, d) term is the mean over its own grid:
//   L_r = Σ_c Σ_d mean_{b, voxels}( (u_c(x + e_d) − u_c(x))² ).
// For a linear field u(x) = A·x this is exactly Σ A_cd² (the squared Frobenius norm of A).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

namespace fedjoint::common::losses {

namespace functional {

// u: [B, d, *spatial] with d = 2 (2D, [B, 2, H, W]) or 3 ([B, 3, D, H, W]). Returns a scalar.
at::Tensor diffusion_loss(const at::Tensor& displacement);

}  // namespace functional

class DiffusionLossImpl : public torch::nn::Cloneable<DiffusionLossImpl> {
 public:
  DiffusionLossImpl() = default;
  void reset() override {}
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& displacement);
};
TORCH_MODULE(DiffusionLoss);

}  // namespace fedjoint::common::losses
