// From a ModelConfig (the `model` section of a site config, or of a federated task) to the network
// and to the preprocessing it is trained and applied with. Training, evaluation and `segment` all
// go through these functions, so a model always sees slices prepared the same way.
//
// Every weights file the trainer writes carries its ModelConfig as JSON in the safetensors
// metadata (key kModelConfigMetadataKey), so a model file is self-describing: `evaluate` and
// `segment` rebuild the network and its preprocessing from the file alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/model_config_json.h"
#include "common/data/slice_dataset.h"
#include "common/data/volume.h"
#include "common/model/joint_spec.h"
#include "common/model/shape_autoencoder.h"
#include "common/model/unet.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent::inference {

using common::config::kModelConfigMetadataKey;
using common::config::ModelConfigFromJson;
using common::config::ModelConfigToJson;

// Slice axis of a ModelConfig: kAutoSliceAxis, or a canonical voxel axis (0 sagittal, 1 coronal,
// 2 axial).
inline constexpr int kAutoSliceAxis = -1;

std::vector<common::model::JointSpec> JointsFromConfig(const v1::ModelConfig& config);

// Checks what the schema cannot: architecture, joint names and structures (ValidateJoints), depth,
// width, variant, slice axis. Messages name the ModelConfig field.
absl::Status ValidateModelConfig(const v1::ModelConfig& config);
// Only what reading slices needs (joints, input_size, in_plane_spacing_mm, slice_axis): enough to
// count a site's samples before the task says which network will train.
absl::Status ValidatePreprocessing(const v1::ModelConfig& config);

// The U-Net of a `unet_resnet` config (encoder depth, width, variant, joints).
absl::StatusOr<common::model::UNetOptions> UNetOptionsFromConfig(const v1::ModelConfig& config);

// The shape auto-encoder of a `shape_autoencoder` config: in_channels =
// PaddedShapeChannels(joints).
absl::StatusOr<common::model::ShapeAutoEncoderOptions> ShapeAutoEncoderOptionsFromConfig(
    const v1::ModelConfig& config);

// The options of the shape auto-encoder that `weights` belong to, read from the tensor shapes
// (in federated rounds only the weights of the earlier phase arrive, not its config).
// InvalidArgument naming the missing or odd tensor when they are not an auto-encoder's.
absl::StatusOr<common::model::ShapeAutoEncoderOptions> ShapeAutoEncoderOptionsFromWeights(
    const common::tensors::TensorMap& weights);

// Builds and initializes the network after torch::manual_seed(seed), so the same config and seed
// give bit-identical weights on every machine.
absl::StatusOr<common::model::UNet> BuildUNet(const v1::ModelConfig& config, uint64_t seed = 0);
absl::StatusOr<common::model::ShapeAutoEncoder> BuildShapeAutoEncoder(const v1::ModelConfig& config,
                                                                      uint64_t seed = 0);

// kAutoSliceAxis for "auto", else 0/1/2 ("sagittal", "coronal", "axial").
absl::StatusOr<int> SliceAxisFromConfig(const v1::ModelConfig& config);
// The acquisition's slice direction of a canonical (LPS) grid: the axis with the largest spacing
// (ties: the later axis, so an isotropic volume is cut axially).
int AutoSliceAxis(const common::data::Geometry& canonical);
const char* SliceAxisName(int axis);

// Slicing, resampling, normalization and crop/pad of the slice dataset for this model, cutting
// along `slice_axis` (0..2, already resolved).
common::data::SliceDatasetOptions SliceOptionsFromConfig(const v1::ModelConfig& config,
                                                         int slice_axis);

}  // namespace fedjoint::site_agent::inference
