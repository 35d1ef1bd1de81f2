#include "site_agent/inference/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/base/status_macros.h"
#include "common/config/model_config_json.h"

namespace fedjoint::site_agent::inference {
namespace {

namespace fs = std::filesystem;
using common::tensors::TensorMap;

// Parameters and buffers by name, as the module holds them (no copies).
std::map<std::string, at::Tensor> NamedTensors(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> named;
  for (const auto& item : module.named_parameters()) named[item.key()] = item.value();
  for (const auto& item : module.named_buffers()) named[item.key()] = item.value();
  return named;
}

std::string Shape(const at::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

std::string Group(const std::vector<std::string>& names, std::string_view what, size_t max_names) {
  std::vector<std::string> shown(
      names.begin(), names.begin() + static_cast<long>(std::min(max_names, names.size())));
  return fmt::format("{} {} ({}{})", names.size(), what, fmt::join(shown, ", "),
                     names.size() > max_names ? ", ..." : "");
}

}  // namespace

TensorMap StateDict(const torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  TensorMap out;
  for (const auto& [name, tensor] : NamedTensors(module)) {
    out[name] = tensor.detach().to(torch::kCPU).clone().contiguous();
  }
  return out;
}

std::string WeightsDiff::ToString(size_t max_names) const {
  std::vector<std::string> parts;
  if (!missing.empty()) parts.push_back(Group(missing, "missing", max_names));
  if (!unexpected.empty()) parts.push_back(Group(unexpected, "unexpected", max_names));
  if (!mismatched.empty()) parts.push_back(Group(mismatched, "mismatched", max_names));
  return parts.empty() ? "identical names and shapes" : fmt::format("{}", fmt::join(parts, ", "));
}

WeightsDiff CompareWeights(const torch::nn::Module& module, const TensorMap& weights) {
  WeightsDiff diff;
  const std::map<std::string, at::Tensor> named = NamedTensors(module);
  for (const auto& [name, tensor] : named) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      diff.missing.push_back(name);
    } else if (!it->second.defined() || it->second.sizes() != tensor.sizes()) {
      diff.mismatched.push_back(fmt::format(
          "{}: file {} vs model {}", name,
          it->second.defined() ? Shape(it->second) : std::string("undefined"), Shape(tensor)));
    }
  }
  for (const auto& [name, tensor] : weights) {
    if (!named.contains(name)) diff.unexpected.push_back(name);
  }
  return diff;
}

absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& weights,
                           const std::string& what) {
  WeightsDiff diff = CompareWeights(module, weights);
  if (!diff.clean()) {
    return absl::InvalidArgumentError(
        fmt::format("{} do not fit the network: {}", what, diff.ToString()));
  }
  torch::NoGradGuard no_grad;
  try {
    for (auto& [name, tensor] : NamedTensors(module)) {
      const at::Tensor& source = weights.at(name);
      tensor.copy_(source.to(tensor.device(), tensor.scalar_type()));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        fmt::format("{}: copying into the network failed: {}", what, e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::Status WriteModelFile(const fs::path& path, const TensorMap& weights,
                            const v1::ModelConfig& config, const common::tensors::Metadata& extra) {
  common::tensors::Metadata metadata = extra;
  metadata[std::string(common::config::kModelConfigMetadataKey)] =
      common::config::ModelConfigToJson(config);
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  return common::tensors::WriteSafetensors(path, weights, metadata);
}

absl::StatusOr<fs::path> ResolveModelPath(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    if (fs::exists(path, ec)) return path;
    return absl::NotFoundError(fmt::format("model {}: no such file or folder", path.string()));
  }
  const std::vector<fs::path> candidates = {path / "model.safetensors",
                                            path / "final" / "model.safetensors"};
  for (const fs::path& candidate : candidates) {
    if (fs::is_regular_file(candidate, ec)) return candidate;
  }
  return absl::NotFoundError(fmt::format("model folder {} holds no model: looked for {} and {}",
                                         path.string(), candidates[0].string(),
                                         candidates[1].string()));
}

absl::StatusOr<ModelFile> ReadModelFile(const fs::path& path) {
  ModelFile file;
  ASSIGN_OR_RETURN(file.path, ResolveModelPath(path));
  ASSIGN_OR_RETURN(file.weights, common::tensors::LoadSafetensors(file.path, {}, &file.metadata));
  auto it = file.metadata.find(common::config::kModelConfigMetadataKey);
  if (it != file.metadata.end()) {
    absl::StatusOr<v1::ModelConfig> config = common::config::ModelConfigFromJson(it->second);
    if (!config.ok()) {
      return absl::DataLossError(
          fmt::format("model {}: {}", file.path.string(), std::string(config.status().message())));
    }
    file.config = std::move(*config);
    file.has_config = true;
  }
  return file;
}

}  // namespace fedjoint::site_agent::inference
