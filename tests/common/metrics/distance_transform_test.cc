#include "common/metrics/distance_transform.h"

#include <cmath>
#include <limits>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/metrics/surface_distance.h"

namespace fedjoint::common::metrics {
namespace {

// Reference: for every voxel, the minimum over all feature voxels (O(N²)).
std::vector<double> BruteForce(const std::vector<uint8_t>& feature,
                               const std::array<int64_t, 3>& size,
                               const std::array<double, 3>& spacing) {
  std::vector<double> result(feature.size(), std::numeric_limits<double>::infinity());
  auto coords = [&](int64_t n) {
    return std::array<double, 3>{static_cast<double>(n % size[0]) * spacing[0],
                                 static_cast<double>((n / size[0]) % size[1]) * spacing[1],
                                 static_cast<double>(n / (size[0] * size[1])) * spacing[2]};
  };
  for (size_t p = 0; p < feature.size(); ++p) {
    const auto x = coords(static_cast<int64_t>(p));
    for (size_t q = 0; q < feature.size(); ++q) {
      if (!feature[q]) continue;
      const auto y = coords(static_cast<int64_t>(q));
      const double d = (x[0] - y[0]) * (x[0] - y[0]) + (x[1] - y[1]) * (x[1] - y[1]) +
                       (x[2] - y[2]) * (x[2] - y[2]);
      result[p] = std::min(result[p], d);
    }
  }
  return result;
}

TEST(DistanceTransformTest, MatchesBruteForceOnRandomAnisotropicVolumes) {
  std::mt19937 rng(42);
  const std::array<double, 3> spacing = {0.45, 0.8, 3.0};
  for (double density : {0.02, 0.1, 0.5}) {
    const std::array<int64_t, 3> size = {9, 7, 6};
    std::bernoulli_distribution bit(density);
    std::vector<uint8_t> feature(static_cast<size_t>(size[0] * size[1] * size[2]));
    for (auto& f : feature) f = bit(rng) ? 1 : 0;
    feature[17] = 1;  // at least one feature
    const std::vector<double> fast = SquaredDistanceTransform(feature, size, spacing);
    const std::vector<double> slow = BruteForce(feature, size, spacing);
    ASSERT_EQ(fast.size(), slow.size());
    for (size_t n = 0; n < fast.size(); ++n) {
      ASSERT_NEAR(fast[n], slow[n], 1e-9) << "voxel " << n << " density " << density;
    }
  }
}

TEST(DistanceTransformTest, NoFeatureGivesInfinity) {
  const std::vector<uint8_t> feature(24, 0);
  for (double d : SquaredDistanceTransform(feature, {4, 3, 2}, {1, 1, 1})) {
    EXPECT_TRUE(std::isinf(d));
  }
}

TEST(DistanceTransformTest, SingleFeatureAnisotropic) {
  // One feature at (i, j, k) = (0, 0, 0); voxel (2, 1, 1) is at (2·0.5, 1·0.7, 1·2.0) mm.
  std::vector<uint8_t> feature(3 * 2 * 2, 0);
  feature[0] = 1;
  const std::vector<double> d = SquaredDistanceTransform(feature, {3, 2, 2}, {0.5, 0.7, 2.0});
  EXPECT_NEAR(d[2 + 1 * 3 + 1 * 6], 1.0 + 0.49 + 4.0, 1e-12);
}

// A 3x3x3 cube inside a 5x5x5 volume: every voxel but the centre has a face neighbour outside.
// A 2x2x2 cube in the corner: all 8 voxels touch the image border, which counts as outside.
TEST(SurfaceMaskTest, SixNeighbourhoodWithImageBorderOutside) {
  const std::array<int64_t, 3> size = {5, 5, 5};
  std::vector<uint8_t> cube(125, 0);
  for (int k = 1; k <= 3; ++k)
    for (int j = 1; j <= 3; ++j)
      for (int i = 1; i <= 3; ++i) cube[i + 5 * j + 25 * k] = 1;
  std::vector<uint8_t> surface = SurfaceMask(cube, size);
  int count = 0;
  for (uint8_t s : surface) count += s;
  EXPECT_EQ(count, 26);
  EXPECT_EQ(surface[2 + 5 * 2 + 25 * 2], 0);

  std::vector<uint8_t> corner(125, 0);
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 2; ++j)
      for (int i = 0; i < 2; ++i) corner[i + 5 * j + 25 * k] = 1;
  surface = SurfaceMask(corner, size);
  count = 0;
  for (uint8_t s : surface) count += s;
  EXPECT_EQ(count, 8);
}

}  // namespace
}  // namespace fedjoint::common::metrics
