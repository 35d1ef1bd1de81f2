#include "common/model/projection_head.h"

#include <torch/torch.h>

namespace fedjoint::common::model {

ProjectionHeadImpl::ProjectionHeadImpl(ProjectionHeadOptions options)
    : options_(options),
      fc1_(register_module("fc1", std::make_shared<torch::nn::LinearImpl>(options_.in_features(),
                                                                          options_.hidden()))),
      fc2_(register_module(
          "fc2", std::make_shared<torch::nn::LinearImpl>(options_.hidden(), options_.out()))) {}

at::Tensor ProjectionHeadImpl::forward(const at::Tensor& features) {
  TORCH_CHECK(features.dim() == 4 || features.dim() == 2,
              "projection head expects [B, C, h, w] or [B, C], got ", features.sizes());
  at::Tensor pooled = features.dim() == 4 ? features.mean({2, 3}) : features;
  at::Tensor z = fc2_->forward(torch::relu(fc1_->forward(pooled)));
  return torch::nn::functional::normalize(
      z, torch::nn::functional::NormalizeFuncOptions().p(2).dim(1).eps(1e-12));
}

}  // namespace fedjoint::common::model
