// BatchNorm folding for inference: the U-Net of one joint with every eval-mode BatchNorm absorbed
// into the convolution before it, so a forward pass is convolutions (with bias), ReLUs,
// max-pooling, upsampling and concatenation, and no normalization pass over the activations.
//
// For a convolution W (bias b, 0 when absent) followed by the joint's BatchNorm (gamma, beta,
// running mean m, running variance v, eps), with s = gamma / sqrt(v + eps):
//   W' = W * s (per output channel),  b' = beta + (b - m) * s,
// which is exactly BatchNorm in eval mode. The domain of the norms is the joint's name (variant
// kDomain) or "shared" (kShared); the head is the joint's ("heads.<joint>") or the shared "head".
//
// FoldBatchNorm reads the model by its tensor names (tensor_naming.h) and copies what it needs: the
// model is never modified, and later changes to it (training, AdaBN recalibration) do not reach a
// folded network made before them. Fold again after such a change.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/unet.h"

namespace fedjoint::common::model {

struct FoldOptions {
  // Store the weights channels-last (NHWC) and run the forward pass in that layout: oneDNN's
  // convolutions then read and write the activations without reordering them (see
  // docs/performance.md for when it pays).
  bool channels_last = false;
};

// A U-Net with folded BatchNorms for one joint; immutable, so one instance may serve concurrent
// forward passes.
class FoldedUNet {
 public:
  // x: float [B, in_channels, H, W], every sample of the folded joint. Returns the logits of the
  // joint's head, equal up to float rounding to `model->forward(x, joint).logits[joint]` of the
  // source model in eval mode (no embeddings: inference does not use them). The result is
  // channels-last when the network is; callers that need NCHW call .contiguous().
  at::Tensor forward(const at::Tensor& x) const;

  int64_t joint() const { return joint_; }
  int64_t out_channels() const { return head_.weight.size(0); }
  bool channels_last() const { return channels_last_; }
  // Parameters of the folded network (convolution weights and biases).
  int64_t num_parameters() const;

 private:
  friend absl::StatusOr<FoldedUNet> FoldBatchNorm(const UNetImpl& model, int64_t joint,
                                                  const FoldOptions& options);

  struct Conv {
    at::Tensor weight, bias;
    int64_t stride = 1, padding = 0;
    at::Tensor operator()(const at::Tensor& x) const;
  };
  struct Block {  // ResNet BasicBlock (conv1, conv2) or Bottleneck (conv1..conv3)
    Conv conv1, conv2, conv3, downsample;  // conv3 / downsample: undefined weight when absent
  };
  struct DecoderBlock {
    Conv conv1, conv2;
  };

  int64_t joint_ = 0;
  int64_t in_channels_ = 1;
  bool channels_last_ = false;
  UpsampleMode upsample_ = UpsampleMode::kNearest;
  Conv stem_;
  std::array<std::vector<Block>, 4> stages_;
  std::vector<DecoderBlock> decoder_;
  Conv head_;
};

// Folds `joint`'s eval-mode BatchNorms of `model` into its convolutions (see above). Pure: reads
// `model` in whatever mode it is in and leaves it unchanged. InvalidArgument for a joint out of
// range; Internal if the model lacks a tensor the U-Net layout requires (a bug, not an input).
absl::StatusOr<FoldedUNet> FoldBatchNorm(const UNetImpl& model, int64_t joint,
                                         const FoldOptions& options = {});

}  // namespace fedjoint::common::model
