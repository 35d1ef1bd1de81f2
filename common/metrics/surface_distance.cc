#include "common/metrics/surface_distance.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "common/metrics/distance_transform.h"

namespace fedjoint::common::metrics {
namespace {

struct Box {
  std::array<int64_t, 3> lo{0, 0, 0};
  std::array<int64_t, 3> hi{-1, -1, -1};  // inclusive; empty when hi < lo
  bool empty() const { return hi[0] < lo[0]; }
};

Box UnionBoundingBox(std::span<const uint8_t> a, std::span<const uint8_t> b,
                     const std::array<int64_t, 3>& size) {
  Box box;
  box.lo = {size[0], size[1], size[2]};
  int64_t n = 0;
  for (int64_t k = 0; k < size[2]; ++k) {
    for (int64_t j = 0; j < size[1]; ++j) {
      for (int64_t i = 0; i < size[0]; ++i, ++n) {
        if (!a[n] && !b[n]) continue;
        const std::array<int64_t, 3> index = {i, j, k};
        for (int axis = 0; axis < 3; ++axis) {
          box.lo[axis] = std::min(box.lo[axis], index[axis]);
          box.hi[axis] = std::max(box.hi[axis], index[axis]);
        }
      }
    }
  }
  if (box.hi[0] < 0) box = Box{};
  return box;
}

std::vector<uint8_t> Crop(std::span<const uint8_t> mask, const std::array<int64_t, 3>& size,
                          const Box& box, const std::array<int64_t, 3>& crop_size) {
  std::vector<uint8_t> out(static_cast<size_t>(crop_size[0] * crop_size[1] * crop_size[2]));
  int64_t n = 0;
  for (int64_t k = box.lo[2]; k <= box.hi[2]; ++k) {
    for (int64_t j = box.lo[1]; j <= box.hi[1]; ++j) {
      const int64_t row = (k * size[1] + j) * size[0];
      for (int64_t i = box.lo[0]; i <= box.hi[0]; ++i) out[n++] = mask[row + i] ? 1 : 0;
    }
  }
  return out;
}

// Distances from the surface voxels of `from` to the nearest voxel of `to_surface`.
std::vector<double> Directed(const std::vector<uint8_t>& from_surface,
                             const std::vector<uint8_t>& to_surface,
                             const std::array<int64_t, 3>& size,
                             const std::array<double, 3>& spacing) {
  const std::vector<double> squared = SquaredDistanceTransform(to_surface, size, spacing);
  std::vector<double> distances;
  for (size_t n = 0; n < from_surface.size(); ++n) {
    if (from_surface[n]) distances.push_back(std::sqrt(squared[n]));
  }
  return distances;
}

}  // namespace

std::vector<uint8_t> SurfaceMask(std::span<const uint8_t> mask,
                                 const std::array<int64_t, 3>& size) {
  assert(static_cast<int64_t>(mask.size()) == size[0] * size[1] * size[2]);
  std::vector<uint8_t> surface(mask.size(), 0);
  const int64_t si = 1, sj = size[0], sk = size[0] * size[1];
  int64_t n = 0;
  for (int64_t k = 0; k < size[2]; ++k) {
    for (int64_t j = 0; j < size[1]; ++j) {
      for (int64_t i = 0; i < size[0]; ++i, ++n) {
        if (!mask[n]) continue;
        const bool interior = i > 0 && i + 1 < size[0] && j > 0 && j + 1 < size[1] && k > 0 &&
                              k + 1 < size[2] && mask[n - si] && mask[n + si] && mask[n - sj] &&
                              mask[n + sj] && mask[n - sk] && mask[n + sk];
        surface[n] = interior ? 0 : 1;
      }
    }
  }
  return surface;
}

SurfaceDistances ComputeSurfaceDistances(std::span<const uint8_t> a, std::span<const uint8_t> b,
                                         const std::array<int64_t, 3>& size,
                                         const std::array<double, 3>& spacing) {
  SurfaceDistances result;
  const Box box = UnionBoundingBox(a, b, size);
  if (box.empty()) return result;
  const std::array<int64_t, 3> crop_size = {box.hi[0] - box.lo[0] + 1, box.hi[1] - box.lo[1] + 1,
                                            box.hi[2] - box.lo[2] + 1};
  // Outside the union box both masks are empty, so a crop border behaves as the image border.
  const std::vector<uint8_t> surface_a = SurfaceMask(Crop(a, size, box, crop_size), crop_size);
  const std::vector<uint8_t> surface_b = SurfaceMask(Crop(b, size, box, crop_size), crop_size);
  result.a_to_b = Directed(surface_a, surface_b, crop_size, spacing);
  result.b_to_a = Directed(surface_b, surface_a, crop_size, spacing);
  return result;
}

}  // namespace fedjoint::common::metrics
