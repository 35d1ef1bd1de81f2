// Test helpers for normalization layers: give every BatchNorm trained-looking parameters, and
// snapshot a module's tensors to check later that nothing changed.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

namespace fedjoint::common::model::test_util {

// Random, clearly non-default running statistics and affine parameters for every BatchNorm,
// different per domain: what a trained network has, and what makes folding the wrong domain or
// layer visible.
inline void RandomizeNorms(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& item : model.named_modules()) {
    auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get());
    if (bn == nullptr) continue;
    const int64_t c = bn->running_mean.size(0);
    bn->running_mean.copy_(0.5 * torch::randn({c}));
    bn->running_var.copy_(torch::rand({c}) * 1.5 + 0.25);
    bn->weight.copy_(torch::rand({c}) + 0.5);
    bn->bias.copy_(0.3 * torch::randn({c}));
  }
}

// Copies of every parameter and buffer, by name.
inline std::map<std::string, at::Tensor> Snapshot(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> copy;
  for (const auto& item : module.named_parameters()) copy[item.key()] = item.value().clone();
  for (const auto& item : module.named_buffers()) copy[item.key()] = item.value().clone();
  return copy;
}

}  // namespace fedjoint::common::model::test_util
