#include "site_agent/inference/largest_component.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

namespace fedjoint::site_agent::inference {
namespace {

common::data::Volume Labels(int64_t nx, int64_t ny, int64_t nz) {
  common::data::Volume v;
  v.voxels = torch::zeros({nz, ny, nx}, torch::kByte);
  v.geometry.size = {nx, ny, nz};
  return v;
}

TEST(LargestComponentTest, KeepsTheLargestPieceOfEachLabel) {
  auto v = Labels(20, 10, 10);
  // Label 1: a 4x4x4 block and a separate 2x2x2 block. Label 2: one 3x3x3 block and one voxel.
  v.voxels.index_put_(
      {torch::indexing::Slice(1, 5), torch::indexing::Slice(1, 5), torch::indexing::Slice(1, 5)},
      1);
  v.voxels.index_put_(
      {torch::indexing::Slice(7, 9), torch::indexing::Slice(7, 9), torch::indexing::Slice(7, 9)},
      1);
  v.voxels.index_put_(
      {torch::indexing::Slice(1, 4), torch::indexing::Slice(1, 4), torch::indexing::Slice(12, 15)},
      2);
  v.voxels.index_put_({8, 8, 18}, 2);
  auto result = KeepLargestComponents(v);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 2u);
  EXPECT_EQ((*result)[0].label, 1);
  EXPECT_EQ((*result)[0].components, 2);
  EXPECT_EQ((*result)[0].voxels_kept, 64);
  EXPECT_EQ((*result)[0].voxels_removed, 8);
  EXPECT_EQ((*result)[1].components, 2);
  EXPECT_EQ((*result)[1].voxels_removed, 1);
  EXPECT_EQ(v.voxels.eq(1).sum().item<int64_t>(), 64);
  EXPECT_EQ(v.voxels.eq(2).sum().item<int64_t>(), 27);
  EXPECT_EQ(v.voxels[8][8][18].item<int64_t>(), 0);
}

TEST(LargestComponentTest, DiagonalNeighboursAreConnected) {
  auto v = Labels(6, 6, 6);
  // A staircase touching only at corners: one component under 26-connectivity.
  for (int64_t s = 0; s < 5; ++s) v.voxels.index_put_({s, s, s}, 3);
  v.voxels.index_put_({0, 5, 5}, 3);  // isolated
  auto result = KeepLargestComponents(v);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ((*result)[0].components, 2);
  EXPECT_EQ((*result)[0].voxels_kept, 5);
  EXPECT_EQ(v.voxels.eq(3).sum().item<int64_t>(), 5);
}

TEST(LargestComponentTest, RefusesNonLabelVolumes) {
  auto v = Labels(4, 4, 4);
  v.voxels = v.voxels.to(torch::kFloat);
  EXPECT_FALSE(KeepLargestComponents(v).ok());
}

}  // namespace
}  // namespace fedjoint::site_agent::inference
