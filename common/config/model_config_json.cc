#include "common/config/model_config_json.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::config {

std::string ModelConfigToJson(const v1::ModelConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // Cannot fail for a valid message (no Any fields to resolve).
  (void)google::protobuf::util::MessageToJsonString(config, &json, options);
  return json;
}

absl::StatusOr<v1::ModelConfig> ModelConfigFromJson(std::string_view json) {
  v1::ModelConfig config;
  google::protobuf::util::JsonParseOptions options;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config metadata is not a valid ModelConfig: ", status.ToString()));
  }
  return config;
}

}  // namespace fedjoint::common::config
