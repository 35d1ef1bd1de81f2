#include "common/model/init.h"

#include <torch/torch.h>

namespace fedjoint::common::model {

void InitializeWeights(torch::nn::Module& root) {
  torch::NoGradGuard no_grad;
  // include_self=false: the root may still be under construction (not yet in a shared_ptr).
  for (const auto& module : root.modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2dImpl>()) {
      torch::nn::init::kaiming_normal_(conv->weight, /*a=*/0.0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* norm = module->as<torch::nn::BatchNorm2dImpl>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
      norm->reset_running_stats();
    }
  }
}

}  // namespace fedjoint::common::model
