// The fedjoint weights container: named tensors in the safetensors layout, so that Python's
// `safetensors` and PyTorch users can read every file fedjoint writes (and fedjoint can read
// theirs).
//
// File layout (https://github.com/huggingface/safetensors):
//   [8 bytes]  N, the header length, unsigned 64-bit little-endian
//   [N bytes]  UTF-8 JSON object, padded with trailing spaces so the data section starts at an
//              offset that is a multiple of 8:
//                {"__metadata__": {"key": "value", ...},
//                 "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//              `data_offsets` are byte offsets relative to the start of the data section;
//              metadata values are strings.
//   [rest]     the data section: each tensor's elements, C-contiguous (row-major), little-endian.
//
// Strictness (as the safetensors reference implementation): the tensors' byte ranges must tile
// the data section exactly — no overlaps, no unreferenced gaps, no trailing bytes — and each
// range must hold exactly numel × dtype size bytes. Names are unique and non-empty.
// fedjoint writes tensors ordered by element size (largest first), then by name, which keeps every
// tensor naturally aligned in a memory-mapped file.
//
// Digest: fedjoint writes metadata key "fedjoint.sha256" = lowercase hex SHA-256 of the tensor
// content, defined so that renaming a tensor, changing its dtype or shape, or changing any data
// byte changes it (metadata other than tensors is NOT covered; sign the file for that). With u64(x)
// an unsigned 64-bit little-endian integer and i64(x) a signed one, the hashed byte string is:
//   "fedjoint-tensors-v1" 0x00, u64(number of tensors), then for each tensor in ascending bytewise
//   order of its UTF-8 name:
//     u64(len(name)) name, u64(len(dtype)) dtype (e.g. "F32"),
//     u64(rank) i64(dim_0) ... i64(dim_rank-1), u64(len(data)) data.
// It depends only on the tensors, not on the file layout, so it can be recomputed from tensors in
// memory (ComputeDigest) and from any file holding the same tensors (tests/common/tensors/
// crosscheck.py does it in Python).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/tensors/dtype.h"

namespace fedjoint::common::tensors {

// Metadata key holding the content digest (see above).
inline constexpr std::string_view kDigestMetadataKey = "fedjoint.sha256";
// The reserved top-level header key for metadata; no tensor may use it as its name.
inline constexpr std::string_view kMetadataHeaderKey = "__metadata__";
// Size of the header-length prefix.
inline constexpr std::size_t kHeaderLengthBytes = 8;
// The data section starts at a multiple of this (the header is padded with spaces).
inline constexpr std::size_t kDataAlignment = 8;
// Default bound on the JSON header when reading (100 MiB).
inline constexpr uint64_t kDefaultMaxHeaderBytes = 100ull << 20;
// The safetensors reference implementation refuses headers over 100,000,000 bytes; the writer
// keeps below it so that every file fedjoint writes stays readable there.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// String-to-string metadata ("__metadata__"), ordered so that files are byte-for-byte reproducible.
using Metadata = std::map<std::string, std::string, std::less<>>;

// A tensor to write or hash. It borrows `data`: little-endian, C-contiguous, exactly
// numel(shape) × DTypeSize(dtype) bytes. An empty `shape` is a scalar (one element).
struct TensorRef {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
};

// A validated entry of a file's header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data section, [begin, end)
  uint64_t end = 0;

  uint64_t num_bytes() const { return end - begin; }
};

}  // namespace fedjoint::common::tensors
