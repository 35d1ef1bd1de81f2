// Truncation checks for volume files whose ITK readers do not notice a short file: ITK's NIfTI
// and MetaImage readers return whatever bytes exist (a half-copied scan reads as a scan with a
// block of garbage or zeros). These checks compare the file with what its header promises.
// Internal to fedjoint_data (used by volume_io.cc).
#pragma once

#include <cstdint>
#include <filesystem>

#include "absl/status/status.h"

namespace fedjoint::common::data::internal {

// `data_bytes`: the voxel data size the header implies (ITK's GetImageSizeInBytes()).
// OK when the file holds every byte (or when the header is of a kind these checks do not know,
// e.g. NIfTI-2, which is left to ITK); DataLoss naming the file when it is short.
absl::Status CheckNiftiComplete(const std::filesystem::path& path, uint64_t data_bytes);

// MetaImage with LOCAL data (.mha): header length + data (or CompressedDataSize) bytes.
absl::Status CheckMetaImageComplete(const std::filesystem::path& path, uint64_t data_bytes);

}  // namespace fedjoint::common::data::internal
