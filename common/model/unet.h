// Multi-task, multi-domain U-Net with a ResNet encoder (Boutillon et al. 2022, METHODS.md §1).
//
//   encoder.*      ResNet-18/34/50 (resnet_encoder.h), torchvision names
//   decoder.*      U-Net decoder with skips (unet_decoder.h)
//   heads.<joint>  1x1 conv to 1 + n_structures channels, one per joint    (variant kDomain)
//   head           1x1 conv to the union of all joints' structures        (variant kShared)
//   projections.<stage>  projection heads on encoder stages for contrastive losses
// Every normalization is a DomainBatchNorm2d: one BatchNorm per joint in the domain variant
// (".norms.<joint>."), a single one (".norms.shared.") in the shared variant. The full naming
// scheme and the scope rules built on it are in tensor_naming.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/joint_spec.h"
#include "common/model/unet_decoder.h"

namespace torch::nn {
class Conv2dImpl;
}  // namespace torch::nn

namespace fedjoint::common::model {

class ResNetEncoderImpl;
class ProjectionHeadImpl;

// kDomain: the proposed model (per-joint norms and heads). kShared: the "shared" baseline (one
// norm, one head over every joint's structures: see SharedChannelsOfJoint).
enum class Variant { kShared, kDomain };

struct UNetOptions {
  UNetOptions() : joints_(DefaultJoints()) {}
  explicit UNetOptions(std::vector<JointSpec> joints) : joints_(std::move(joints)) {}

  TORCH_ARG(int64_t, depth) = 18;  // 18, 34 (BasicBlock) or 50 (Bottleneck)
  // 1.0 = torchvision's channel counts (required for ImageNet weights). The default 0.5 gives a
  // 3.6 M-parameter network that trains at CPU speed (docs: bench/model_bench.cc).
  TORCH_ARG(double, width_multiplier) = 0.5;
  TORCH_ARG(int64_t, in_channels) = 1;  // grey MRI
  TORCH_ARG(std::vector<JointSpec>, joints);
  TORCH_ARG(Variant, variant) = Variant::kDomain;
  // Five decoder block widths, deepest first; empty = {256, 128, 64, 32, 16} x width, min 8.
  TORCH_ARG(std::vector<int64_t>, decoder_channels) = {};
  TORCH_ARG(UpsampleMode, upsample) = UpsampleMode::kNearest;
  // Encoder stages carrying a projection head: 0 = stem (H/2), 1..4 = layer1..layer4. May be
  // empty (no embeddings computed).
  TORCH_ARG(std::vector<int64_t>, projection_stages) = std::vector<int64_t>{2, 3, 4};
  TORCH_ARG(int64_t, projection_hidden) = 256;
  TORCH_ARG(int64_t, projection_dim) = 128;
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;
};

// Checks every field; the message names it ("UNetOptions.depth: ...", "joints[1].name ...").
absl::Status ValidateUNetOptions(const UNetOptions& options);
// The decoder widths actually used (resolves the empty default).
std::vector<int64_t> ResolvedDecoderChannels(const UNetOptions& options);
// Names of the normalization domains: the joint names (kDomain) or {"shared"} (kShared).
std::vector<std::string> NormDomains(const UNetOptions& options);
// "stem", "layer1" .. "layer4".
std::string StageName(int64_t stage);

struct UNetOutput {
  // Per joint j (options.joints() order): logits of the batch's samples of joint j only,
  // [n_j, C_j, H, W] with C_j = 1 + n_structures(j) (kDomain) or SharedHeadChannels (kShared);
  // undefined when the batch has no sample of joint j. Each head runs only on its own samples,
  // so no compute is spent on heads whose output the loss would discard.
  std::vector<at::Tensor> logits;
  // Per joint j: int64 [n_j], the input batch indices of those samples, ascending (logits[j][k]
  // belongs to input sample sample_indices[j][k]). Empty for joints absent from the batch.
  std::vector<at::Tensor> sample_indices;
  // Per projection stage (options.projection_stages() order): [B, projection_dim], unit L2 norm,
  // in input batch order.
  std::vector<at::Tensor> embeddings;
};

class UNetImpl : public torch::nn::Module {
 public:
  // Throws c10::Error with ValidateUNetOptions' message for invalid options (MakeUNet returns
  // it as a Status instead).
  explicit UNetImpl(UNetOptions options);

  // x: float [B, in_channels, H, W]; joints: int64 [B], sample i's joint index. Batches may mix
  // joints freely: each sample is normalized with its own joint's statistics (batch statistics of
  // its joint's group in training mode). Any H, W work; multiples of 32 avoid resampling. In
  // training mode BatchNorm needs > 1 value per channel, so each joint present in the batch needs
  // n_j * ceil(H/32) * ceil(W/32) > 1 (at 128x128 any n_j >= 1 is fine).
  UNetOutput forward(const at::Tensor& x, const at::Tensor& joints);
  // Whole batch of one joint.
  UNetOutput forward(const at::Tensor& x, int64_t joint);

  const UNetOptions& options() const { return options_; }
  int64_t num_joints() const { return static_cast<int64_t>(options_.joints().size()); }
  std::optional<int64_t> JointIndex(std::string_view name) const;
  // Output channels for joint j's samples (see UNetOutput::logits).
  int64_t OutputChannels(int64_t joint) const;

  ResNetEncoderImpl& encoder() { return *encoder_; }
  UNetDecoderImpl& decoder() { return *decoder_; }

 private:
  UNetOptions options_;
  std::shared_ptr<ResNetEncoderImpl> encoder_;
  std::shared_ptr<UNetDecoderImpl> decoder_;
  std::vector<std::shared_ptr<torch::nn::Conv2dImpl>> heads_;  // one per joint, or one (kShared)
  std::vector<std::shared_ptr<ProjectionHeadImpl>> projections_;
};
TORCH_MODULE(UNet);

// Validates, then builds and initializes (InitializeWeights; heads Xavier-uniform, bias 0).
absl::StatusOr<UNet> MakeUNet(const UNetOptions& options);

// A deep copy (same options, every parameter and buffer copied, same training mode). UNet is not
// a torch::nn::Cloneable; use this instead of clone().
UNet CloneUNet(const UNetImpl& model);

}  // namespace fedjoint::common::model
