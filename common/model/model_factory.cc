#include "common/model/model_factory.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <torch/torch.h>

namespace fedjoint::common::model {

std::vector<JointSpec> JointsFromConfig(const v1::ModelConfig& config) {
  std::vector<JointSpec> joints;
  for (const v1::JointConfig& joint : config.joints()) {
    joints.push_back({joint.name(), {joint.structures().begin(), joint.structures().end()}});
  }
  return joints;
}

absl::Status ValidatePreprocessing(const v1::ModelConfig& config) {
  if (absl::Status joints = ValidateJoints(JointsFromConfig(config)); !joints.ok()) {
    return absl::InvalidArgumentError(fmt::format("ModelConfig.{}", std::string(joints.message())));
  }
  if (config.input_size() < 32) {
    return absl::InvalidArgumentError(
        fmt::format("ModelConfig.input_size: {} must be >= 32", config.input_size()));
  }
  if (!(config.in_plane_spacing_mm() >= 0)) {
    return absl::InvalidArgumentError(fmt::format(
        "ModelConfig.in_plane_spacing_mm: {} must be >= 0", config.in_plane_spacing_mm()));
  }
  if (absl::StatusOr<int> axis = SliceAxisFromConfig(config); !axis.ok()) return axis.status();
  return absl::OkStatus();
}

absl::Status ValidateModelConfig(const v1::ModelConfig& config) {
  const std::string& arch = config.architecture();
  if (arch != "unet_resnet" && arch != "shape_autoencoder") {
    return absl::InvalidArgumentError(fmt::format(
        "ModelConfig.architecture: '{}' is not one of unet_resnet, shape_autoencoder", arch));
  }
  if (absl::Status prep = ValidatePreprocessing(config); !prep.ok()) return prep;
  if (arch == "unet_resnet") {
    absl::StatusOr<UNetOptions> options = UNetOptionsFromConfig(config);
    if (!options.ok()) return options.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<UNetOptions> UNetOptionsFromConfig(const v1::ModelConfig& config) {
  if (config.architecture() != "unet_resnet") {
    return absl::InvalidArgumentError(
        fmt::format("ModelConfig.architecture: '{}' is not a segmentation network (unet_resnet)",
                    config.architecture()));
  }
  UNetOptions options(JointsFromConfig(config));
  options.depth(config.encoder_depth()).width_multiplier(config.width_multiplier());
  if (config.variant() == "shared") {
    options.variant(Variant::kShared);
  } else if (config.variant() == "domain" || config.variant().empty()) {
    options.variant(Variant::kDomain);
  } else {
    return absl::InvalidArgumentError(
        fmt::format("ModelConfig.variant: '{}' is not one of domain, shared", config.variant()));
  }
  if (absl::Status valid = ValidateUNetOptions(options); !valid.ok()) {
    return absl::InvalidArgumentError(fmt::format("ModelConfig: {}", std::string(valid.message())));
  }
  return options;
}

absl::StatusOr<ShapeAutoEncoderOptions> ShapeAutoEncoderOptionsFromConfig(
    const v1::ModelConfig& config) {
  std::vector<JointSpec> joints = JointsFromConfig(config);
  if (absl::Status valid = ValidateJoints(joints); !valid.ok()) {
    return absl::InvalidArgumentError(fmt::format("ModelConfig.{}", std::string(valid.message())));
  }
  return ShapeAutoEncoderOptions(PaddedShapeChannels(joints));
}

absl::StatusOr<ShapeAutoEncoderOptions> ShapeAutoEncoderOptionsFromWeights(
    const common::tensors::TensorMap& weights) {
  // encoder = conv(in, base) ReLU [conv(base<<l, base<<(l+1), stride 2) ReLU] x levels
  //           conv(base<<levels, code): convolutions at Sequential indices 0, 2, ..., 2*levels+2.
  std::map<int, at::Tensor> convs;
  for (const auto& [name, tensor] : weights) {
    if (!name.starts_with("encoder.") || !name.ends_with(".weight")) continue;
    const std::string index = name.substr(8, name.size() - 8 - 7);
    if (index.empty() ||
        !std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    convs[std::stoi(index)] = tensor;
  }
  if (convs.size() < 3 || !weights.contains("decoder.0.weight")) {
    return absl::InvalidArgumentError(
        "the weights are not a shape auto-encoder's (expected encoder.<i>.weight convolutions "
        "and decoder.0.weight)");
  }
  const int64_t levels = static_cast<int64_t>(convs.size()) - 2;
  int expected = 0;
  for (const auto& [index, tensor] : convs) {
    if (index != expected || tensor.dim() != 4) {
      return absl::InvalidArgumentError(fmt::format(
          "shape auto-encoder weights: unexpected encoder layout at encoder.{}.weight", index));
    }
    expected += 2;
  }
  const at::Tensor& first = convs.begin()->second;
  const at::Tensor& last = convs.rbegin()->second;
  ShapeAutoEncoderOptions options(first.size(1));
  options.base_channels(first.size(0)).levels(levels).code_channels(last.size(0));
  return options;
}

absl::StatusOr<UNet> BuildUNet(const v1::ModelConfig& config, uint64_t seed) {
  absl::StatusOr<UNetOptions> options = UNetOptionsFromConfig(config);
  if (!options.ok()) return options.status();
  torch::manual_seed(seed);
  return MakeUNet(*options);
}

absl::StatusOr<ShapeAutoEncoder> BuildShapeAutoEncoder(const v1::ModelConfig& config,
                                                       uint64_t seed) {
  absl::StatusOr<ShapeAutoEncoderOptions> options = ShapeAutoEncoderOptionsFromConfig(config);
  if (!options.ok()) return options.status();
  torch::manual_seed(seed);
  try {
    return ShapeAutoEncoder(*options);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        fmt::format("building the shape auto-encoder: {}", e.what_without_backtrace()));
  }
}

absl::StatusOr<int> SliceAxisFromConfig(const v1::ModelConfig& config) {
  const std::string& axis = config.slice_axis();
  if (axis == "auto" || axis.empty()) return kAutoSliceAxis;
  if (axis == "sagittal") return 0;
  if (axis == "coronal") return 1;
  if (axis == "axial") return 2;
  return absl::InvalidArgumentError(fmt::format(
      "ModelConfig.slice_axis: '{}' is not one of auto, sagittal, coronal, axial", axis));
}

const char* SliceAxisName(int axis) {
  switch (axis) {
    case 0:
      return "sagittal";
    case 1:
      return "coronal";
    case 2:
      return "axial";
    default:
      return "auto";
  }
}

}  // namespace fedjoint::common::model
