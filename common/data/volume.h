// A 3D scan or label volume: voxels plus the physical geometry that places them in the patient.
// Every reader fills both, every writer keeps both, so a label volume written for an input scan
// overlays it exactly in any viewer.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"

namespace fedjoint::common::data {

// ITK/DICOM conventions (LPS physical space). Index order is (x, y, z) = (i, j, k), i fastest.
struct Geometry {
  std::array<int64_t, 3> size{0, 0, 0};          // voxels along i, j, k
  std::array<double, 3> spacing{1.0, 1.0, 1.0};  // mm between voxel centres along i, j, k
  std::array<double, 3> origin{0.0, 0.0, 0.0};   // physical position (mm) of voxel (0,0,0)
  // Row-major 3x3; column c is the physical direction of index axis c.
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};

  int64_t NumVoxels() const { return size[0] * size[1] * size[2]; }
};

struct Volume {
  // Shape [size_k, size_j, size_i] (slowest first, as the voxels lie in memory), contiguous, CPU.
  // Images are float32; label volumes are uint8 (or int16 where a dataset has > 255 values).
  at::Tensor voxels;
  Geometry geometry;
};

// "float32", "uint8", "int16", ... (numpy's names, for messages).
std::string DtypeName(at::ScalarType dtype);

// Physical position (mm, LPS) of a (possibly fractional) voxel index (i, j, k):
// origin + direction * diag(spacing) * index.
std::array<double, 3> IndexToPhysical(const Geometry& geometry, const std::array<double, 3>& index);

// The continuous voxel index (i, j, k) of a physical point; inverse of IndexToPhysical.
std::array<double, 3> PhysicalToIndex(const Geometry& geometry, const std::array<double, 3>& point);

// Checks that `geometry` is usable: positive sizes, positive finite spacing, finite origin, and a
// direction matrix that is finite and invertible. `what` names the volume in the message.
absl::Status ValidateGeometry(const Geometry& geometry, std::string_view what);

// ValidateGeometry plus the voxels: defined, CPU, contiguous, shape [size_k, size_j, size_i], and
// dtype float32 (images), uint8 or int16 (labels).
absl::Status ValidateVolume(const Volume& volume, std::string_view what);

}  // namespace fedjoint::common::data
