#include "common/model/resnet_encoder.h"

#include <cmath>

#include <torch/torch.h>

#include "common/model/domain_batch_norm.h"

namespace fedjoint::common::model {
namespace {

std::shared_ptr<torch::nn::Conv2dImpl> Conv(int64_t in, int64_t out, int64_t kernel,
                                            int64_t stride) {
  return std::make_shared<torch::nn::Conv2dImpl>(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

struct Layout {
  bool bottleneck;
  std::array<int64_t, 4> blocks;
};

Layout LayoutOf(int64_t depth) {
  switch (depth) {
    case 18:
      return {false, {2, 2, 2, 2}};
    case 34:
      return {false, {3, 4, 6, 3}};
    case 50:
      return {true, {3, 4, 6, 3}};
    default:
      break;
  }
  TORCH_CHECK(false, "ResNet depth must be 18, 34 or 50, got ", depth);
  return {};
}

}  // namespace

// torchvision's 1x1 conv + norm shortcut; children "0" and "1" as in its nn.Sequential.
class DownsampleImpl : public torch::nn::Module {
 public:
  DownsampleImpl(int64_t in, int64_t out, int64_t stride, const DomainBatchNorm2dOptions& norm)
      : conv_(register_module("0", Conv(in, out, 1, stride))),
        norm_(register_module("1", std::make_shared<DomainBatchNorm2dImpl>(
                                       DomainBatchNorm2dOptions(norm).num_features(out)))) {}

  at::Tensor forward(const at::Tensor& x, std::span<const int64_t> sizes) {
    return norm_->forward_grouped(conv_->forward(x), sizes);
  }

 private:
  std::shared_ptr<torch::nn::Conv2dImpl> conv_;
  std::shared_ptr<DomainBatchNorm2dImpl> norm_;
};

// BasicBlock (two 3x3) or Bottleneck (1x1, 3x3 with the stride, 1x1 x4), torchvision names.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in, int64_t planes, int64_t stride, bool bottleneck,
                    const DomainBatchNorm2dOptions& norm)
      : bottleneck_(bottleneck) {
    auto make_norm = [&](const std::string& name, int64_t channels) {
      return register_module(name, std::make_shared<DomainBatchNorm2dImpl>(
                                       DomainBatchNorm2dOptions(norm).num_features(channels)));
    };
    int64_t out = bottleneck ? planes * 4 : planes;
    if (bottleneck) {
      conv1_ = register_module("conv1", Conv(in, planes, 1, 1));
      bn1_ = make_norm("bn1", planes);
      conv2_ = register_module("conv2", Conv(planes, planes, 3, stride));
      bn2_ = make_norm("bn2", planes);
      conv3_ = register_module("conv3", Conv(planes, out, 1, 1));
      bn3_ = make_norm("bn3", out);
    } else {
      conv1_ = register_module("conv1", Conv(in, planes, 3, stride));
      bn1_ = make_norm("bn1", planes);
      conv2_ = register_module("conv2", Conv(planes, planes, 3, 1));
      bn2_ = make_norm("bn2", planes);
    }
    if (stride != 1 || in != out) {
      downsample_ =
          register_module("downsample", std::make_shared<DownsampleImpl>(in, out, stride, norm));
    }
  }

  at::Tensor forward(const at::Tensor& x, std::span<const int64_t> sizes) {
    at::Tensor y = torch::relu(bn1_->forward_grouped(conv1_->forward(x), sizes));
    y = bn2_->forward_grouped(conv2_->forward(y), sizes);
    if (bottleneck_) y = bn3_->forward_grouped(conv3_->forward(torch::relu(y)), sizes);
    at::Tensor identity = downsample_ ? downsample_->forward(x, sizes) : x;
    return torch::relu(y + identity);
  }

 private:
  bool bottleneck_;
  std::shared_ptr<torch::nn::Conv2dImpl> conv1_, conv2_, conv3_;
  std::shared_ptr<DomainBatchNorm2dImpl> bn1_, bn2_, bn3_;
  std::shared_ptr<DownsampleImpl> downsample_;
};

int64_t ScaledChannels(int64_t channels, double width) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(channels) * width));
}

std::array<int64_t, 5> ResNetFeatureChannels(int64_t depth, double width) {
  const int64_t expansion = LayoutOf(depth).bottleneck ? 4 : 1;
  std::array<int64_t, 5> channels{ScaledChannels(64, width)};
  for (int64_t stage = 0; stage < 4; ++stage) {
    channels[stage + 1] = ScaledChannels(64 << stage, width) * expansion;
  }
  return channels;
}

ResNetEncoderImpl::ResNetEncoderImpl(ResNetEncoderOptions options)
    : options_(std::move(options)),
      channels_(ResNetFeatureChannels(options_.depth(), options_.width_multiplier())) {
  const Layout layout = LayoutOf(options_.depth());
  const int64_t expansion = layout.bottleneck ? 4 : 1;
  DomainBatchNorm2dOptions norm = DomainBatchNorm2dOptions(channels_[0], options_.domains())
                                      .eps(options_.bn_eps())
                                      .momentum(options_.bn_momentum());
  conv1_ =
      register_module("conv1", std::make_shared<torch::nn::Conv2dImpl>(
                                   torch::nn::Conv2dOptions(options_.in_channels(), channels_[0], 7)
                                       .stride(2)
                                       .padding(3)
                                       .bias(false)));
  bn1_ = register_module("bn1", std::make_shared<DomainBatchNorm2dImpl>(norm));
  int64_t in = channels_[0];
  for (int64_t stage = 0; stage < 4; ++stage) {
    auto list = register_module("layer" + std::to_string(stage + 1), torch::nn::ModuleList());
    const int64_t planes = ScaledChannels(64 << stage, options_.width_multiplier());
    for (int64_t b = 0; b < layout.blocks[stage]; ++b) {
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      auto block = std::make_shared<ResidualBlockImpl>(in, planes, stride, layout.bottleneck, norm);
      list->push_back(block);
      layers_[stage].push_back(std::move(block));
      in = planes * expansion;
    }
  }
}

std::vector<at::Tensor> ResNetEncoderImpl::forward(const at::Tensor& x,
                                                   std::span<const int64_t> group_sizes) {
  std::vector<at::Tensor> features;
  features.reserve(5);
  at::Tensor y = torch::relu(bn1_->forward_grouped(conv1_->forward(x), group_sizes));
  features.push_back(y);
  y = torch::max_pool2d(y, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
  for (const auto& layer : layers_) {
    for (const auto& block : layer) y = block->forward(y, group_sizes);
    features.push_back(y);
  }
  return features;
}

std::vector<at::Tensor> ResNetEncoderImpl::forward(const at::Tensor& x, int64_t domain) {
  TORCH_CHECK(domain >= 0 && domain < num_domains(), "domain id ", domain, " is out of range [0, ",
              num_domains(), ")");
  std::vector<int64_t> sizes(num_domains(), 0);
  sizes[domain] = x.size(0);
  return forward(x, sizes);
}

}  // namespace fedjoint::common::model
