// Reading the weights container (layout and digest in common/tensors/safetensors.h): a validated
// view of a buffer, and a memory-mapped file. Everything is checked against the real buffer size
// before any tensor is exposed; errors name the source, the tensor and what is wrong:
//   InvalidArgument    malformed header or layout (bad JSON, unknown dtype, size mismatch,
//                      overlaps, holes, trailing bytes, duplicate names, missing digest, ...)
//   DataLoss           truncated input or content digest mismatch
//   ResourceExhausted  header larger than the bound
//   NotFound           missing file
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensors/mapped_file.h"
#include "common/tensors/safetensors.h"

namespace fedjoint::common::tensors {

struct SafetensorsReadOptions {
  // Headers longer than this are refused (ResourceExhausted) before anything is parsed.
  uint64_t max_header_bytes = kDefaultMaxHeaderBytes;
  // Refuse input without a "fedjoint.sha256" metadata entry. Files from other tools (plain
  // safetensors) need this off.
  bool require_digest = true;
  // Recompute the content digest (one pass over the data) and compare it with the stored one.
  bool verify_digest = true;
};

// A header checked against the size of its whole file, without the file's data (e.g. to follow a
// file while it streams in): everything SafetensorsView::Parse checks except the content digest.
struct SafetensorsLayout {
  uint64_t data_offset = 0;         // where the data section starts in the file
  std::vector<TensorInfo> tensors;  // sorted by name; offsets relative to the data section
  Metadata metadata;
  std::string stored_digest;  // the "fedjoint.sha256" entry (well-formed), or empty
};

// From the first 8 bytes of a file of `file_size` bytes: how many bytes from the start hold its
// header (8 + the announced length), after checking that length against the limits.
absl::StatusOr<uint64_t> SafetensorsHeaderBytes(std::span<const std::byte> prefix,
                                                uint64_t file_size,
                                                const SafetensorsReadOptions& options = {},
                                                std::string_view source = "buffer");
// `header_bytes`: at least the first SafetensorsHeaderBytes() bytes of the file.
absl::StatusOr<SafetensorsLayout> ParseSafetensorsLayout(std::span<const std::byte> header_bytes,
                                                         uint64_t file_size,
                                                         const SafetensorsReadOptions& options = {},
                                                         std::string_view source = "buffer");

// A validated container inside a buffer it does not own (the buffer must outlive the view).
class SafetensorsView {
 public:
  // `source` names the buffer in error messages (a path, a peer, "update from site-3").
  static absl::StatusOr<SafetensorsView> Parse(std::span<const std::byte> buffer,
                                               const SafetensorsReadOptions& options = {},
                                               std::string_view source = "buffer");

  // Sorted by name (the digest's order).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const Metadata& metadata() const { return metadata_; }
  // With verify_digest: the recomputed (and, if stored, matching) digest. Without: the stored
  // digest, or empty when there is none.
  const std::string& digest() const { return digest_; }
  const std::string& source() const { return source_; }

  // nullptr when there is no such tensor.
  const TensorInfo* Find(std::string_view name) const;
  // Raw little-endian bytes; NotFound names the tensor and the source.
  absl::StatusOr<std::span<const std::byte>> data(std::string_view name) const;
  std::span<const std::byte> data(const TensorInfo& info) const {
    return data_section_.subspan(info.begin, info.num_bytes());
  }
  // Typed elements (e.g. DataAs<float> for F32), for math without torch. Fails when the dtype
  // differs or the bytes are not aligned for T (possible in files from other writers).
  template <typename T>
  absl::StatusOr<std::span<const T>> DataAs(std::string_view name) const {
    absl::StatusOr<std::span<const std::byte>> bytes =
        TypedData(name, DTypeOf<T>::value, alignof(T));
    if (!bytes.ok()) return bytes.status();
    return std::span<const T>(reinterpret_cast<const T*>(bytes->data()), bytes->size() / sizeof(T));
  }
  // The tensors as TensorRefs borrowing this view's data (to hash or re-write them).
  std::vector<TensorRef> refs() const;

 private:
  absl::StatusOr<std::span<const std::byte>> TypedData(std::string_view name, DType dtype,
                                                       std::size_t alignment) const;

  std::string source_;
  std::span<const std::byte> data_section_;
  std::vector<TensorInfo> tensors_;
  Metadata metadata_;
  std::string digest_;
};

// A container file, memory-mapped read-only and validated (SafetensorsView) before it is returned.
// Tensor data stays on disk until touched; spans are valid while this object lives.
// Files must not be modified in place while mapped (fedjoint only replaces them by rename).
class SafetensorsFile {
 public:
  static absl::StatusOr<SafetensorsFile> Open(const std::filesystem::path& path,
                                              const SafetensorsReadOptions& options = {});

  const SafetensorsView& view() const { return view_; }
  const std::vector<TensorInfo>& tensors() const { return view_.tensors(); }
  const Metadata& metadata() const { return view_.metadata(); }
  const std::string& digest() const { return view_.digest(); }
  const TensorInfo* Find(std::string_view name) const { return view_.Find(name); }
  absl::StatusOr<std::span<const std::byte>> data(std::string_view name) const {
    return view_.data(name);
  }
  std::span<const std::byte> data(const TensorInfo& info) const { return view_.data(info); }
  template <typename T>
  absl::StatusOr<std::span<const T>> DataAs(std::string_view name) const {
    return view_.template DataAs<T>(name);
  }
  std::vector<TensorRef> refs() const { return view_.refs(); }

 private:
  SafetensorsFile(MappedFile mapping, SafetensorsView view)
      : mapping_(std::move(mapping)), view_(std::move(view)) {}

  MappedFile mapping_;  // owns the bytes view_ points into (addresses survive moves)
  SafetensorsView view_;
};

}  // namespace fedjoint::common::tensors
