// The content digest of a set of named tensors (definition in common/tensors/safetensors.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/sha256.h"
#include "common/tensors/safetensors.h"

namespace fedjoint::common::tensors {

// Checks what every writer and hasher relies on: names non-empty, unique and not "__metadata__";
// dimensions non-negative; data exactly numel × dtype size bytes. The error names the tensor.
absl::Status ValidateTensorRefs(std::span<const TensorRef> tensors);

// Lowercase hex SHA-256 of the tensors' content, independent of their order in `tensors`.
// The federation uses it to name and compare updates without writing a file.
absl::StatusOr<std::string> ComputeDigest(std::span<const TensorRef> tensors);

// The same digest built incrementally, for bytes that arrive in pieces (e.g. a file as it streams
// in): Begin(number of tensors), then for each tensor in ascending bytewise order of its name
// BeginTensor() followed by exactly `data_bytes` bytes through Update(), then HexDigest().
class DigestBuilder {
 public:
  DigestBuilder();
  ~DigestBuilder();
  DigestBuilder(const DigestBuilder&) = delete;
  DigestBuilder& operator=(const DigestBuilder&) = delete;

  void Begin(uint64_t num_tensors);
  void BeginTensor(std::string_view name, DType dtype, std::span<const int64_t> shape,
                   uint64_t data_bytes);
  void Update(const void* data, std::size_t size);
  absl::StatusOr<std::string> HexDigest();

 private:
  void UpdateU64(uint64_t value);
  base::Sha256Hasher sha_;
};

// True for 64 lowercase hex characters, the only spelling fedjoint writes and accepts.
bool IsWellFormedDigest(std::string_view digest);

}  // namespace fedjoint::common::tensors
