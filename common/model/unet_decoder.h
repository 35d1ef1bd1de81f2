// U-Net decoder over the five ResNet feature maps: five blocks, each "upsample to the skip's size,
// concatenate the skip, (3x3 conv, domain norm, ReLU) x 2"; the last block has no skip and
// upsamples to the input resolution. Upsampling is nearest/bilinear interpolation rather than
// ConvTranspose2d, which takes a slow path in LibTorch 1.13 on CPU (~1.7x slower training).
//
// Names: blocks.<i>.conv1.weight, blocks.<i>.bn1.norms.<domain>.*, blocks.<i>.conv2.weight,
// blocks.<i>.bn2.norms.<domain>.*, i = 0 (deepest, H/16) .. 4 (full resolution).
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

namespace fedjoint::common::model {

class DecoderBlockImpl;

enum class UpsampleMode { kNearest, kBilinear };

using FeatureChannels = std::array<int64_t, 5>;  // stem, layer1..layer4

struct UNetDecoderOptions {
  UNetDecoderOptions(FeatureChannels encoder_channels, std::vector<int64_t> decoder_channels,
                     std::vector<std::string> domains)
      : encoder_channels_(encoder_channels),
        decoder_channels_(std::move(decoder_channels)),
        domains_(std::move(domains)) {}
  TORCH_ARG(FeatureChannels, encoder_channels);
  TORCH_ARG(std::vector<int64_t>, decoder_channels);  // five block widths, deepest first
  TORCH_ARG(std::vector<std::string>, domains);
  TORCH_ARG(UpsampleMode, upsample) = UpsampleMode::kNearest;
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;
};

class UNetDecoderImpl : public torch::nn::Module {
 public:
  explicit UNetDecoderImpl(UNetDecoderOptions options);

  // `features` = [stem, layer1, layer2, layer3, layer4] of a batch grouped by domain
  // (`group_sizes`); returns [B, decoder_channels.back(), output_size[0], output_size[1]].
  at::Tensor forward(const std::vector<at::Tensor>& features, std::array<int64_t, 2> output_size,
                     std::span<const int64_t> group_sizes);

  int64_t out_channels() const { return options_.decoder_channels().back(); }
  const UNetDecoderOptions& options() const { return options_; }

 private:
  UNetDecoderOptions options_;
  std::vector<std::shared_ptr<DecoderBlockImpl>> blocks_;
};
TORCH_MODULE(UNetDecoder);

}  // namespace fedjoint::common::model
