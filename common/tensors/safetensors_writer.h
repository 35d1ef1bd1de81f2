// Writing named tensors in the safetensors layout (see common/tensors/safetensors.h), always with
// the "fedjoint.sha256" content digest in the metadata.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensors/safetensors.h"

namespace fedjoint::common::tensors {

// A file's bytes without copying the tensor data: `header` (the 8-byte length, the padded JSON)
// followed by `segments` (borrowed from the TensorRefs, in file order) concatenate to the file.
// Lets a caller stream a container (e.g. in gRPC chunks) without materializing it.
struct SafetensorsEncoding {
  std::string header;
  std::vector<std::span<const std::byte>> segments;
  std::string digest;       // also stored in the header's metadata
  uint64_t total_size = 0;  // header.size() + sum of segment sizes
};

// Validates `tensors` (ValidateTensorRefs), hashes them (one pass over the data) and lays them out.
// `metadata` is copied into "__metadata__"; a "fedjoint.sha256" entry in it is replaced by the
// digest of `tensors`.
absl::StatusOr<SafetensorsEncoding> EncodeSafetensors(std::span<const TensorRef> tensors,
                                                      const Metadata& metadata = {});

// The whole file in memory; for small payloads (tests, small messages).
absl::StatusOr<std::string> SerializeSafetensors(std::span<const TensorRef> tensors,
                                                 const Metadata& metadata = {});

// Writes the file atomically (common/base/atomic_file.h): after a failure or a kill, `path` holds
// either its previous content or the complete new file. Data is streamed in large blocks straight
// from the TensorRefs. Errors name `path`.
absl::Status WriteSafetensors(const std::filesystem::path& path, std::span<const TensorRef> tensors,
                              const Metadata& metadata = {});

}  // namespace fedjoint::common::tensors
