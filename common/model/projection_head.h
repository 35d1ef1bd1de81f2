// Projection head for contrastive losses (SupCon / positional contrastive): global average pool of
// a feature map, Linear -> ReLU -> Linear, L2-normalized. Names: fc1.{weight,bias}, fc2.*.
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace torch::nn {
class LinearImpl;
}  // namespace torch::nn

namespace fedjoint::common::model {

struct ProjectionHeadOptions {
  ProjectionHeadOptions(int64_t in_features, int64_t hidden, int64_t out)
      : in_features_(in_features), hidden_(hidden), out_(out) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, out);
};

class ProjectionHeadImpl : public torch::nn::Module {
 public:
  explicit ProjectionHeadImpl(ProjectionHeadOptions options);
  // [B, C, h, w] feature map (pooled here) or [B, C] pooled features -> [B, out], unit L2 norm.
  at::Tensor forward(const at::Tensor& features);
  const ProjectionHeadOptions& options() const { return options_; }

 private:
  ProjectionHeadOptions options_;
  std::shared_ptr<torch::nn::LinearImpl> fc1_, fc2_;
};
TORCH_MODULE(ProjectionHead);

}  // namespace fedjoint::common::model
