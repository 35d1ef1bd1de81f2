// The content digest of a set of named tensors (definition in common/tensors/safetensors.h).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensors/safetensors.h"

namespace fedjoint::common::tensors {

// Checks what every writer and hasher relies on: names non-empty, unique and not "__metadata__";
// dimensions non-negative; data exactly numel × dtype size bytes. The error names the tensor.
absl::Status ValidateTensorRefs(std::span<const TensorRef> tensors);

// Lowercase hex SHA-256 of the tensors' content, independent of their order in `tensors`.
// The federation uses it to name and compare updates without writing a file.
absl::StatusOr<std::string> ComputeDigest(std::span<const TensorRef> tensors);

// True for 64 lowercase hex characters, the only spelling fedjoint writes and accepts.
bool IsWellFormedDigest(std::string_view digest);

}  // namespace fedjoint::common::tensors
