#include "common/model/shape_autoencoder.h"

#include <torch/torch.h>

#include "common/model/init.h"

namespace fedjoint::common::model {
namespace {

torch::nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2));
}

}  // namespace

ShapeAutoEncoderImpl::ShapeAutoEncoderImpl(ShapeAutoEncoderOptions options) : options_(options) {
  TORCH_CHECK(options_.in_channels() >= 1 && options_.base_channels() >= 1 &&
                  options_.levels() >= 1 && options_.code_channels() >= 1,
              "ShapeAutoEncoderOptions: in_channels, base_channels, levels and code_channels must "
              "be >= 1");
  const int64_t base = options_.base_channels();
  torch::nn::Sequential encoder;
  encoder->push_back(Conv(options_.in_channels(), base, 3, 1));
  encoder->push_back(torch::nn::ReLU());
  for (int64_t level = 0; level < options_.levels(); ++level) {
    encoder->push_back(Conv(base << level, base << (level + 1), 3, 2));
    encoder->push_back(torch::nn::ReLU());
  }
  // Linear code (no activation): E(prediction) and E(truth) are compared in this space.
  encoder->push_back(Conv(base << options_.levels(), options_.code_channels(), 1, 1));

  torch::nn::Sequential decoder;
  decoder->push_back(Conv(options_.code_channels(), base << options_.levels(), 1, 1));
  decoder->push_back(torch::nn::ReLU());
  for (int64_t level = options_.levels(); level > 0; --level) {
    decoder->push_back(torch::nn::Upsample(torch::nn::UpsampleOptions()
                                               .scale_factor(std::vector<double>{2.0, 2.0})
                                               .mode(torch::kNearest)));
    decoder->push_back(Conv(base << level, base << (level - 1), 3, 1));
    decoder->push_back(torch::nn::ReLU());
  }
  decoder->push_back(Conv(base, options_.in_channels(), 1, 1));
  encoder_ = register_module("encoder", encoder.ptr());
  decoder_ = register_module("decoder", decoder.ptr());
  InitializeWeights(*this);
}

at::Tensor ShapeAutoEncoderImpl::encode(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels(),
              "shape auto-encoder input must be [B, ", options_.in_channels(), ", H, W], got ",
              x.sizes());
  return encoder_->forward(x);
}

at::Tensor ShapeAutoEncoderImpl::decode(const at::Tensor& code, c10::IntArrayRef out_size) {
  TORCH_CHECK(out_size.size() == 2, "decode needs an output size {H, W}");
  at::Tensor y = decoder_->forward(code);
  if (y.size(2) != out_size[0] || y.size(3) != out_size[1]) {
    // Sizes that are not multiples of 2^levels: the encoder rounded up, resample back.
    y = at::upsample_bilinear2d(y, out_size, /*align_corners=*/false);
  }
  return y;
}

at::Tensor ShapeAutoEncoderImpl::forward(const at::Tensor& x) {
  return decode(encode(x), {x.size(2), x.size(3)});
}

at::Tensor OneHotPadded(const at::Tensor& labels, int64_t channels) {
  TORCH_CHECK(labels.dim() == 3, "labels must be [B, H, W], got ", labels.sizes());
  at::Tensor one_hot = torch::one_hot(labels.to(torch::kLong), channels);  // checks the range
  return one_hot.permute({0, 3, 1, 2}).to(torch::kFloat).contiguous();
}

at::Tensor PadChannels(const at::Tensor& x, int64_t channels) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) <= channels, "cannot pad ", x.sizes(), " to ", channels,
              " channels");
  if (x.size(1) == channels) return x;
  return at::constant_pad_nd(x, {0, 0, 0, 0, 0, channels - x.size(1)}, 0.0);
}

}  // namespace fedjoint::common::model
