// Exact Euclidean distance transform on an anisotropic 3D grid (Felzenszwalb & Huttenlocher,
// "Distance Transforms of Sampled Functions", 2012): the squared distance is separable, so three
// 1-D passes of the lower envelope of parabolas give exact results in O(N) time.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace fedjoint::common::metrics {

// For every voxel, the squared distance in mm² from its centre to the centre of the nearest voxel
// where `feature` is non-zero; +infinity everywhere when there is no feature voxel.
// Layout as common/data's Geometry: size and spacing (mm) along (i, j, k), i fastest in memory,
// so `feature` has size[0]·size[1]·size[2] elements.
std::vector<double> SquaredDistanceTransform(std::span<const uint8_t> feature,
                                             const std::array<int64_t, 3>& size,
                                             const std::array<double, 3>& spacing);

}  // namespace fedjoint::common::metrics
