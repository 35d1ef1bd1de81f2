// Deterministic initialization (given torch::manual_seed), walking the descendants of `root`
// once (the root itself is skipped, so constructors can call this):
// convolutions Kaiming-normal (fan_out, ReLU) as torchvision's ResNet, biases zero; batch norms
// weight 1, bias 0, fresh running statistics; Linear layers keep LibTorch's default init.
#pragma once

#include <torch/nn/module.h>

namespace fedjoint::common::model {

void InitializeWeights(torch::nn::Module& root);

}  // namespace fedjoint::common::model
