// Reading and writing scan and label volumes: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr),
// MetaImage (.mha, .mhd) and DICOM series (a folder). ITK does the work behind this interface
// (and only in volume_io.cc); its exceptions come out as absl::Status naming the file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/volume.h"

namespace fedjoint::common::data {

struct ReadOptions {
  // DICOM folders only: the SeriesInstanceUID (0020,000E) to read. Empty: the series with the
  // most slices (ties broken by the smallest UID, so the choice is deterministic).
  std::string series_uid;
};

struct WriteOptions {
  // Compress the voxel data (.nrrd gzip, .mha zlib). .nii.gz is always compressed and .nii never
  // is, whatever this says: the extension decides.
  bool compress = true;
};

// Reads a 3D scan as float32 voxels (DICOM rescale slope/intercept applied). `path` is a file
// whose extension names its format, or a folder holding a DICOM series. Errors: NotFound (no such
// file, or no DICOM series in the folder / no series with the requested UID — the message lists
// the UIDs present), InvalidArgument (not 3D, multi-component pixels, unsupported extension),
// DataLoss (the file is corrupt or not in the format its extension says).
absl::StatusOr<Volume> ReadVolume(const std::filesystem::path& path,
                                  const ReadOptions& options = {});

// Reads a label volume. Voxels become uint8 when every value lies in [0, 255], else int16 (the
// convention of volume.h: one byte per voxel for the usual few structures, int16 for datasets with
// large or negative label codes). Values that are not integers or do not fit int16 are refused
// (InvalidArgument), since a silently truncated label is a wrong label.
absl::StatusOr<Volume> ReadLabelVolume(const std::filesystem::path& path,
                                       const ReadOptions& options = {});

// Writes `volume` to `path` (.nii, .nii.gz, .nrrd, .mha): float32 voxels as a float image, uint8
// and int16 voxels as an integer image of that type; geometry is kept. The file appears
// atomically: ITK writes a temporary file with the same extension in the same folder, which is
// fsync'ed and renamed into place. Detached-header formats (.nhdr, .mhd) are refused because their
// two files cannot be replaced atomically.
absl::Status WriteVolume(const Volume& volume, const std::filesystem::path& path,
                         const WriteOptions& options = {});

// The SeriesInstanceUIDs of the DICOM series in `folder` (not recursive), sorted.
absl::StatusOr<std::vector<std::string>> ListDicomSeries(const std::filesystem::path& folder);

}  // namespace fedjoint::common::data
