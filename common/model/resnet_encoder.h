// ResNet encoder (torchvision layouts) with domain-specific batch normalization.
//
// Tensor names are torchvision's with every BatchNorm replaced by a DomainBatchNorm2d, i.e. with
// ".norms.<domain>" inserted before the tensor's own name:
//   torchvision                          here (prefix "encoder." inside the U-Net)
//   conv1.weight                         conv1.weight
//   bn1.running_mean                     bn1.norms.<domain>.running_mean
//   layer1.0.conv1.weight                layer1.0.conv1.weight
//   layer2.0.downsample.0.weight         layer2.0.downsample.0.weight
//   layer2.0.downsample.1.weight         layer2.0.downsample.1.norms.<domain>.weight
// so a torchvision state dict maps onto it by deleting that segment (pretrained.h).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace torch::nn {
class Conv2dImpl;
}  // namespace torch::nn

namespace fedjoint::common::model {

class DomainBatchNorm2dImpl;
class ResidualBlockImpl;

struct ResNetEncoderOptions {
  TORCH_ARG(int64_t, depth) = 18;  // 18 and 34: BasicBlock; 50: Bottleneck (torchvision v1.5)
  // Scales every channel count; 1.0 is torchvision's 64/128/256/512 (x4 for Bottleneck).
  TORCH_ARG(double, width_multiplier) = 1.0;
  TORCH_ARG(int64_t, in_channels) = 1;
  TORCH_ARG(std::vector<std::string>, domains) = {"shared"};
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;
};

// max(1, round(channels * width)): the rule every scaled layer uses.
int64_t ScaledChannels(int64_t channels, double width);

// Output channels of the stem (H/2) and of layer1..layer4 (H/4 .. H/32).
std::array<int64_t, 5> ResNetFeatureChannels(int64_t depth, double width);

class ResNetEncoderImpl : public torch::nn::Module {
 public:
  // Throws c10::Error for a depth other than 18/34/50 (validate options first: unet.h).
  explicit ResNetEncoderImpl(ResNetEncoderOptions options);

  // Feature maps [stem (after ReLU, before max-pool), layer1, layer2, layer3, layer4].
  // `x` grouped by domain with `group_sizes[d]` samples of domain d (DomainGrouping).
  std::vector<at::Tensor> forward(const at::Tensor& x, std::span<const int64_t> group_sizes);
  // Whole batch from one domain.
  std::vector<at::Tensor> forward(const at::Tensor& x, int64_t domain);

  const ResNetEncoderOptions& options() const { return options_; }
  const std::array<int64_t, 5>& feature_channels() const { return channels_; }
  int64_t num_domains() const { return static_cast<int64_t>(options_.domains().size()); }

 private:
  ResNetEncoderOptions options_;
  std::array<int64_t, 5> channels_{};
  std::shared_ptr<torch::nn::Conv2dImpl> conv1_;
  std::shared_ptr<DomainBatchNorm2dImpl> bn1_;
  std::array<std::vector<std::shared_ptr<ResidualBlockImpl>>, 4> layers_;
};
TORCH_MODULE(ResNetEncoder);

}  // namespace fedjoint::common::model
