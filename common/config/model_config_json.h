// A v1::ModelConfig as JSON inside model files: every published or trained model carries its
// network description under kModelConfigMetadataKey, so evaluate/segment need no config file.
// Torch-free: the coordinator writes it, the site agent reads it.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::common::config {

// Safetensors metadata key holding the model's v1::ModelConfig as JSON.
inline constexpr std::string_view kModelConfigMetadataKey = "fedjoint.model_config";

// JSON (protobuf's mapping, field names as in the YAML, every field printed) and back.
std::string ModelConfigToJson(const v1::ModelConfig& config);
absl::StatusOr<v1::ModelConfig> ModelConfigFromJson(std::string_view json);

}  // namespace fedjoint::common::config
