#include "common/data/volume.h"

#include <cmath>
#include <string>

#include <fmt/format.h>

namespace fedjoint::common::data {
namespace {

double Determinant(const std::array<double, 9>& m) {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
         m[2] * (m[3] * m[7] - m[4] * m[6]);
}

// Inverse of a row-major 3x3 matrix (callers have checked it is invertible).
std::array<double, 9> Inverse(const std::array<double, 9>& m) {
  const double inv_det = 1.0 / Determinant(m);
  return {(m[4] * m[8] - m[5] * m[7]) * inv_det, (m[2] * m[7] - m[1] * m[8]) * inv_det,
          (m[1] * m[5] - m[2] * m[4]) * inv_det, (m[5] * m[6] - m[3] * m[8]) * inv_det,
          (m[0] * m[8] - m[2] * m[6]) * inv_det, (m[2] * m[3] - m[0] * m[5]) * inv_det,
          (m[3] * m[7] - m[4] * m[6]) * inv_det, (m[1] * m[6] - m[0] * m[7]) * inv_det,
          (m[0] * m[4] - m[1] * m[3]) * inv_det};
}

}  // namespace

std::string DtypeName(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kByte:
      return "uint8";
    case at::kChar:
      return "int8";
    case at::kShort:
      return "int16";
    case at::kInt:
      return "int32";
    case at::kLong:
      return "int64";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(dtype);
  }
}

std::array<double, 3> IndexToPhysical(const Geometry& geometry,
                                      const std::array<double, 3>& index) {
  std::array<double, 3> point = geometry.origin;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      point[r] += geometry.direction[r * 3 + c] * geometry.spacing[c] * index[c];
    }
  }
  return point;
}

std::array<double, 3> PhysicalToIndex(const Geometry& geometry,
                                      const std::array<double, 3>& point) {
  const std::array<double, 9> inverse = Inverse(geometry.direction);
  std::array<double, 3> index{0, 0, 0};
  for (int c = 0; c < 3; ++c) {
    for (int r = 0; r < 3; ++r) index[c] += inverse[c * 3 + r] * (point[r] - geometry.origin[r]);
    index[c] /= geometry.spacing[c];
  }
  return index;
}

absl::Status ValidateGeometry(const Geometry& geometry, std::string_view what) {
  for (int c = 0; c < 3; ++c) {
    if (geometry.size[c] <= 0) {
      return absl::InvalidArgumentError(fmt::format("{}: size [{}] must be positive in every axis",
                                                    what, fmt::join(geometry.size, ", ")));
    }
    if (!std::isfinite(geometry.spacing[c]) || geometry.spacing[c] <= 0) {
      return absl::InvalidArgumentError(
          fmt::format("{}: spacing [{}] must be positive and finite in every axis", what,
                      fmt::join(geometry.spacing, ", ")));
    }
    if (!std::isfinite(geometry.origin[c])) {
      return absl::InvalidArgumentError(
          fmt::format("{}: origin [{}] is not finite", what, fmt::join(geometry.origin, ", ")));
    }
  }
  for (double d : geometry.direction) {
    if (!std::isfinite(d)) {
      return absl::InvalidArgumentError(fmt::format("{}: direction [{}] is not finite", what,
                                                    fmt::join(geometry.direction, ", ")));
    }
  }
  // Directions are unit columns in practice, so |det| is ~1; 1e-6 only rejects degenerate ones.
  if (std::abs(Determinant(geometry.direction)) < 1e-6) {
    return absl::InvalidArgumentError(
        fmt::format("{}: direction [{}] is singular", what, fmt::join(geometry.direction, ", ")));
  }
  return absl::OkStatus();
}

absl::Status ValidateVolume(const Volume& volume, std::string_view what) {
  if (absl::Status status = ValidateGeometry(volume.geometry, what); !status.ok()) return status;
  const at::Tensor& v = volume.voxels;
  if (!v.defined()) return absl::InvalidArgumentError(fmt::format("{}: voxels are missing", what));
  if (!v.device().is_cpu()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: voxels are on {}, expected the CPU", what, v.device().str()));
  }
  const auto& size = volume.geometry.size;
  if (v.dim() != 3 || v.size(0) != size[2] || v.size(1) != size[1] || v.size(2) != size[0]) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: voxel shape [{}] does not match the geometry's size (i, j, k) = ({}); "
        "expected [{}, {}, {}]",
        what, fmt::join(v.sizes(), ", "), fmt::join(size, ", "), size[2], size[1], size[0]));
  }
  if (!v.is_contiguous()) {
    return absl::InvalidArgumentError(fmt::format("{}: voxels are not contiguous", what));
  }
  const at::ScalarType dtype = v.scalar_type();
  if (dtype != at::kFloat && dtype != at::kByte && dtype != at::kShort) {
    return absl::InvalidArgumentError(
        fmt::format("{}: voxel type {} is not supported (float32 images, uint8 or int16 labels)",
                    what, DtypeName(dtype)));
  }
  return absl::OkStatus();
}

}  // namespace fedjoint::common::data
