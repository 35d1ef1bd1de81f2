// Surfaces of binary masks and the distances between them, on an anisotropic 3D grid.
//
// Definitions (shared by HD, HD95 and ASSD in segmentation_metrics.h):
//  - A surface voxel is a voxel of the structure with at least one of its 6 face neighbours
//    outside the structure; outside the image counts as outside (a structure cut by the field of
//    view has a surface there). plastimatch uses the same 6-neighbourhood.
//  - The directed distance of a surface voxel of A is the Euclidean distance (mm, between voxel
//    centres, with the voxel spacing) to the nearest surface voxel of B.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace fedjoint::common::metrics {

// Layout as common/data's Geometry: size along (i, j, k), i fastest in memory.
std::vector<uint8_t> SurfaceMask(std::span<const uint8_t> mask, const std::array<int64_t, 3>& size);

struct SurfaceDistances {
  std::vector<double> a_to_b;  // one per surface voxel of A, in memory order
  std::vector<double> b_to_a;  // one per surface voxel of B
};

// Directed surface distances in both directions. When one mask is empty, the other's distances
// are +infinity (no surface to reach); an empty mask has no distances. The computation runs on
// the bounding box of A ∪ B only (exact: every surface voxel lies inside it).
SurfaceDistances ComputeSurfaceDistances(std::span<const uint8_t> a, std::span<const uint8_t> b,
                                         const std::array<int64_t, 3>& size,
                                         const std::array<double, 3>& spacing);

}  // namespace fedjoint::common::metrics
