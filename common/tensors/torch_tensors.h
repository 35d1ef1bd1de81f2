// Adapter between the weights container (common/tensors/safetensors.h) and at::Tensor. Torch-free
// code (the coordinator's aggregation) uses the container directly; this is for code that holds
// torch tensors (the model, the site trainer).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensors/safetensors.h"
#include "common/tensors/safetensors_file.h"

namespace fedjoint::common::tensors {

// Named tensors; the map's order is the name order the digest uses.
using TensorMap = std::map<std::string, at::Tensor>;

// kFloat -> F32, kBFloat16 -> BF16, ...; other scalar types (complex, quantized, ...) are refused.
absl::StatusOr<DType> ToDType(c10::ScalarType type);
c10::ScalarType ToScalarType(DType dtype);

// TensorRefs over CPU, contiguous, detached versions of torch tensors. `owned` keeps the converted
// tensors (copies only where a tensor was not already a contiguous CPU tensor) alive for `refs`.
struct TorchTensorRefs {
  std::vector<at::Tensor> owned;
  std::vector<TensorRef> refs;
};
// Errors name the tensor (undefined, sparse, unsupported dtype).
absl::StatusOr<TorchTensorRefs> MakeTensorRefs(const TensorMap& tensors);

// The container operations for torch tensors (see safetensors_writer.h and digest.h).
absl::StatusOr<std::string> ComputeDigest(const TensorMap& tensors);
absl::StatusOr<std::string> SerializeSafetensors(const TensorMap& tensors,
                                                 const Metadata& metadata = {});
absl::Status WriteSafetensors(const std::filesystem::path& path, const TensorMap& tensors,
                              const Metadata& metadata = {});

// Copies every tensor of a validated container into new CPU tensors (independent of the buffer).
absl::StatusOr<TensorMap> ToTorch(const SafetensorsView& view);

// Opens, validates and copies a container file. `metadata`, when given, receives its metadata.
absl::StatusOr<TensorMap> LoadSafetensors(const std::filesystem::path& path,
                                          const SafetensorsReadOptions& options = {},
                                          Metadata* metadata = nullptr);

}  // namespace fedjoint::common::tensors
