// A network's named tensors (parameters and buffers) as a TensorMap, loading them back strictly,
// and model files: a safetensors file whose metadata holds the model's config.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/config.pb.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace fedjoint::site_agent::inference {

// Every parameter and buffer of `module` by its dotted name: detached CPU copies (later training
// does not change them).
common::tensors::TensorMap StateDict(const torch::nn::Module& module);

// What differs between a module and a TensorMap.
struct WeightsDiff {
  std::vector<std::string> missing;     // in the module, absent from the map
  std::vector<std::string> unexpected;  // in the map, unknown to the module
  std::vector<std::string> mismatched;  // "name: file [..] F32 vs model [..] F32"

  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // "3 missing (a, b, c), 1 unexpected (d), 1 mismatched (e: file [2, 3] vs model [3, 2])",
  // listing at most `max_names` names per group.
  std::string ToString(size_t max_names = 8) const;
};

WeightsDiff CompareWeights(const torch::nn::Module& module,
                           const common::tensors::TensorMap& weights);

// Copies `weights` into `module`'s parameters and buffers. Strict: every name must match with
// the same shape (dtype is converted), else InvalidArgument naming `what` and the differences,
// and the module is left unchanged.
absl::Status LoadStateDict(torch::nn::Module& module, const common::tensors::TensorMap& weights,
                           const std::string& what);

// Writes a model file (atomically): the tensors plus metadata holding `config` (as JSON) and any
// `extra` entries.
absl::Status WriteModelFile(const std::filesystem::path& path,
                            const common::tensors::TensorMap& weights,
                            const v1::ModelConfig& config,
                            const common::tensors::Metadata& extra = {});

struct ModelFile {
  std::filesystem::path path;
  common::tensors::TensorMap weights;
  common::tensors::Metadata metadata;
  // From the metadata; has_config false when the file carries none (e.g. a global model written
  // by the coordinator).
  v1::ModelConfig config;
  bool has_config = false;
};

// `path` is a weights file, or a folder holding model.safetensors (a training run's folder), or
// final/model.safetensors (a site's state folder after a federation). NotFound lists the places
// looked at.
absl::StatusOr<std::filesystem::path> ResolveModelPath(const std::filesystem::path& path);
absl::StatusOr<ModelFile> ReadModelFile(const std::filesystem::path& path);

}  // namespace fedjoint::site_agent::inference
