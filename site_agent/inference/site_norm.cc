#include "site_agent/inference/site_norm.h"

#include <torch/torch.h>

#include "common/base/status_macros.h"
#include "common/model/model_factory.h"
#include "site_agent/inference/weights.h"

namespace fedjoint::site_agent::inference {

absl::StatusOr<std::vector<std::string>> MissingNormTensors(
    const v1::ModelConfig& config, const common::tensors::TensorMap& weights,
    const std::string& joint) {
  ASSIGN_OR_RETURN(common::model::UNet net, common::model::BuildUNet(config));
  const std::string domain = config.variant() == "shared" ? "shared" : joint;
  const std::string segment = ".norms." + domain + ".";
  std::vector<std::string> missing;
  for (const std::string& name : CompareWeights(*net, weights).missing) {
    if (name.find(segment) != std::string::npos) missing.push_back(name);
  }
  return missing;
}

absl::StatusOr<common::tensors::TensorMap> CompleteWithInitialNorm(
    const v1::ModelConfig& config, const common::tensors::TensorMap& weights) {
  ASSIGN_OR_RETURN(common::model::UNet net, common::model::BuildUNet(config));
  common::tensors::TensorMap completed = weights;
  for (auto& [name, tensor] : StateDict(*net)) {
    if (name.find(".norms.") != std::string::npos) completed.try_emplace(name, tensor);
  }
  return completed;
}

}  // namespace fedjoint::site_agent::inference
