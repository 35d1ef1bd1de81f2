// Transfer learning from natural-image classification (METHODS.md §1): copy a torchvision ResNet
// ImageNet state dict into the U-Net's encoder.
//
// Keys are torchvision's ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
// "layer2.0.downsample.1.weight", "fc.weight", ...), e.g. as written by
// scripts/export_torchvision_encoder.py. Rules:
// - every BatchNorm tensor (affine parameters and running statistics) is copied into EVERY
//   domain's BatchNorm ("bn1.weight" -> "bn1.norms.<domain>.weight" for each domain);
// - the first convolution's RGB kernels are summed over the input channels for grey input
//   (in_channels = 1); for in_channels = c != 3 each channel gets sum / c (the same image fed to
//   c channels then gives the same activations); c = 3 is copied as is;
// - "fc.*" (the classifier) is reported as ignored; "*.num_batches_tracked" is copied when present
//   and not required (older exports lack it);
// - width_multiplier must be 1.0: real torchvision weights have torchvision's channel counts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/resnet_encoder.h"
#include "common/model/unet.h"

namespace fedjoint::common::model {

struct LoadReport {
  std::vector<std::string> loaded;      // state-dict keys copied into the model
  std::vector<std::string> missing;     // expected by the encoder, absent from the state dict
  std::vector<std::string> unexpected;  // in the state dict, unknown to the encoder
  std::vector<std::string> ignored;     // fc.*: expected extras, not an error
  std::vector<std::string> mismatched;  // "key: state dict [..] vs model [..]"
  int64_t tensors_written = 0;          // model tensors written (a norm key counts per domain)

  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // One paragraph: counts, then every missing / unexpected / mismatched key.
  std::string ToString() const;
};

struct LoadOptions {
  // strict: any missing, unexpected or mismatched key is an error and the model is left
  // unchanged. Not strict: the matching keys are loaded and the report lists the rest.
  bool strict = true;
};

// InvalidArgument (model unchanged) when strict and the report is not clean, or when
// width_multiplier != 1.0 and a shape differs (the message names the first mismatched key and
// both shapes, whatever `strict` says).
absl::StatusOr<LoadReport> LoadTorchvisionEncoder(
    ResNetEncoderImpl& encoder, const std::map<std::string, at::Tensor>& state_dict,
    LoadOptions options = {});
absl::StatusOr<LoadReport> LoadTorchvisionEncoder(
    UNet& model, const std::map<std::string, at::Tensor>& state_dict, LoadOptions options = {});

}  // namespace fedjoint::common::model
