// Shape-prior auto-encoder (METHODS.md §1, "multi-joint anatomical priors"): a small
// convolutional auto-encoder trained to reconstruct ground-truth one-hot masks of every joint.
// Its frozen encoder E then gives the shape loss L_shape = ||E(softmax(logits)) - E(one_hot(y))||².
//
// Input layout: per-joint one-hot padded to a common channel count (PaddedShapeChannels: max over
// joints of 1 + n_structures). Channel 0 is background, channel k is the joint's label k, unused
// channels are zero. One auto-encoder serves all joints with few channels; the union layout of
// the shared head would work as well (in_channels is just a number) but is sparser.
//
// The code is spatial, [B, code_channels, H / 2^levels, W / 2^levels] (8 x 8 x 8 = 512 values for
// a 128² slice with the defaults): a flat vector would tie the model to one slice size. No
// normalization layers, so train/eval behave the same and nothing here is site-scoped.
// Names: encoder.<i>.{weight,bias} and decoder.<i>.{weight,bias} (nn::Sequential indices).
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace torch::nn {
class SequentialImpl;
}  // namespace torch::nn

namespace fedjoint::common::model {

struct ShapeAutoEncoderOptions {
  explicit ShapeAutoEncoderOptions(int64_t in_channels) : in_channels_(in_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, base_channels) = 16;  // doubles at every level
  TORCH_ARG(int64_t, levels) = 4;          // stride-2 convolutions in the encoder
  TORCH_ARG(int64_t, code_channels) = 8;
};

class ShapeAutoEncoderImpl : public torch::nn::Module {
 public:
  explicit ShapeAutoEncoderImpl(ShapeAutoEncoderOptions options);

  // [B, in_channels, H, W] masks or probabilities -> [B, code_channels, ceil(H/2^L), ceil(W/2^L)].
  at::Tensor encode(const at::Tensor& x);
  // Code -> reconstruction logits [B, in_channels, out_size[0], out_size[1]].
  at::Tensor decode(const at::Tensor& code, c10::IntArrayRef out_size);
  // decode(encode(x)) at x's size: logits, to train with cross-entropy against the mask.
  at::Tensor forward(const at::Tensor& x);

  const ShapeAutoEncoderOptions& options() const { return options_; }

 private:
  ShapeAutoEncoderOptions options_;
  std::shared_ptr<torch::nn::SequentialImpl> encoder_, decoder_;
};
TORCH_MODULE(ShapeAutoEncoder);

// labels int [B, H, W] with values in [0, channels) -> float one-hot [B, channels, H, W].
at::Tensor OneHotPadded(const at::Tensor& labels, int64_t channels);
// Zero-pads dim 1 of [B, c, H, W] to `channels` (e.g. a joint head's softmax before E).
at::Tensor PadChannels(const at::Tensor& x, int64_t channels);

}  // namespace fedjoint::common::model
