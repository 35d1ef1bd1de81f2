// From a ModelConfig (the `model` section of a site config, of a federated task, or of a model
// file's metadata) to the network: validation, options and the seeded build. Training, evaluation,
// `segment` and the coordinator's initial models all go through these functions, so one config
// always means one network. No data or imaging code here: the coordinator builds its initial
// weights with this and links no image reader (the slicing that goes with a config is
// common/data/slice_options.h).
//
// Every weights file carries its ModelConfig as JSON in the safetensors metadata
// (common/config/model_config_json.h), so a model file is self-describing.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/joint_spec.h"
#include "common/model/shape_autoencoder.h"
#include "common/model/unet.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::common::model {

// Slice axis of a ModelConfig: kAutoSliceAxis, or a canonical voxel axis (0 sagittal, 1 coronal,
// 2 axial).
inline constexpr int kAutoSliceAxis = -1;

std::vector<JointSpec> JointsFromConfig(const v1::ModelConfig& config);

// Checks what the schema cannot: architecture, joint names and structures (ValidateJoints), depth,
// width, variant, slice axis. Messages name the ModelConfig field.
absl::Status ValidateModelConfig(const v1::ModelConfig& config);
// Only what reading slices needs (joints, input_size, in_plane_spacing_mm, slice_axis): enough to
// count a site's samples before the task says which network will train.
absl::Status ValidatePreprocessing(const v1::ModelConfig& config);

// The U-Net of a `unet_resnet` config (encoder depth, width, variant, joints).
absl::StatusOr<UNetOptions> UNetOptionsFromConfig(const v1::ModelConfig& config);

// The shape auto-encoder of a `shape_autoencoder` config: in_channels =
// PaddedShapeChannels(joints).
absl::StatusOr<ShapeAutoEncoderOptions> ShapeAutoEncoderOptionsFromConfig(
    const v1::ModelConfig& config);

// The options of the shape auto-encoder that `weights` belong to, read from the tensor shapes
// (in federated rounds only the weights of the earlier phase arrive, not its config).
// InvalidArgument naming the missing or odd tensor when they are not an auto-encoder's.
absl::StatusOr<ShapeAutoEncoderOptions> ShapeAutoEncoderOptionsFromWeights(
    const common::tensors::TensorMap& weights);

// Builds and initializes the network after torch::manual_seed(seed), so the same config and seed
// give bit-identical weights on every machine.
absl::StatusOr<UNet> BuildUNet(const v1::ModelConfig& config, uint64_t seed = 0);
absl::StatusOr<ShapeAutoEncoder> BuildShapeAutoEncoder(const v1::ModelConfig& config,
                                                       uint64_t seed = 0);

// kAutoSliceAxis for "auto", else 0/1/2 ("sagittal", "coronal", "axial").
absl::StatusOr<int> SliceAxisFromConfig(const v1::ModelConfig& config);
const char* SliceAxisName(int axis);

}  // namespace fedjoint::common::model
