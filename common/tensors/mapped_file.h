// A read-only memory map of a whole file, unmapped on destruction.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

#include "absl/status/statusor.h"

namespace fedjoint::common::tensors {

class MappedFile {
 public:
  // `populate` pre-faults every page (MAP_POPULATE): faster when the whole file will be read
  // anyway (e.g. to verify a digest), wasteful when only a few tensors are. Empty files map to an
  // empty span. Errors name the file; a missing file is NotFound.
  static absl::StatusOr<MappedFile> Open(const std::filesystem::path& path, bool populate);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // Valid as long as this object lives; moving it keeps the address.
  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  MappedFile(const std::byte* data, std::size_t size) : data_(data), size_(size) {}
  void Unmap();

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace fedjoint::common::tensors
