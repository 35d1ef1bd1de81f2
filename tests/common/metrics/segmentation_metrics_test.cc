#include "common/metrics/segmentation_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/metrics/surface_distance.h"

namespace fedjoint::common::metrics {
namespace {

using ::testing::HasSubstr;

// [k, j, i] uint8 label volume with `label` in the box [lo, hi) given as (i, j, k).
at::Tensor Box(const std::array<int64_t, 3>& size, const std::array<int64_t, 3>& lo,
               const std::array<int64_t, 3>& hi, int label = 1) {
  at::Tensor v = torch::zeros({size[2], size[1], size[0]}, torch::kUInt8);
  v.slice(0, lo[2], hi[2]).slice(1, lo[1], hi[1]).slice(2, lo[0], hi[0]).fill_(label);
  return v;
}

// Reference surface distances: naive 6-neighbour surfaces, O(S_a·S_b) nearest search.
std::vector<double> BruteDirected(const at::Tensor& a, const at::Tensor& b,
                                  const std::array<double, 3>& spacing) {
  auto surface = [](const at::Tensor& m) {
    std::vector<std::array<int64_t, 3>> points;
    const int64_t nk = m.size(0), nj = m.size(1), ni = m.size(2);
    auto in = [&](int64_t k, int64_t j, int64_t i) {
      return k >= 0 && j >= 0 && i >= 0 && k < nk && j < nj && i < ni &&
             m[k][j][i].item<int>() != 0;
    };
    for (int64_t k = 0; k < nk; ++k)
      for (int64_t j = 0; j < nj; ++j)
        for (int64_t i = 0; i < ni; ++i)
          if (in(k, j, i) && !(in(k - 1, j, i) && in(k + 1, j, i) && in(k, j - 1, i) &&
                               in(k, j + 1, i) && in(k, j, i - 1) && in(k, j, i + 1)))
            points.push_back({i, j, k});
    return points;
  };
  const auto sa = surface(a);
  const auto sb = surface(b);
  std::vector<double> result;
  for (const auto& p : sa) {
    double best = INFINITY;
    for (const auto& q : sb) {
      double d = 0;
      for (int c = 0; c < 3; ++c) {
        const double x = static_cast<double>(p[c] - q[c]) * spacing[c];
        d += x * x;
      }
      best = std::min(best, std::sqrt(d));
    }
    result.push_back(best);
  }
  return result;
}

TEST(PercentileTest, MatchesNumpyLinearInterpolation) {
  // numpy.percentile([1, 2, 3, 4], 95) = 3.85 (rank 0.95·3 = 2.85).
  EXPECT_DOUBLE_EQ(Percentile({4, 1, 3, 2}, 95), 3.85);
  EXPECT_DOUBLE_EQ(Percentile({4, 1, 3, 2}, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile({4, 1, 3, 2}, 100), 4);
  EXPECT_DOUBLE_EQ(Percentile({7}, 95), 7);
  EXPECT_TRUE(std::isnan(Percentile({}, 95)));
}

// A line of 6 voxels along i (spacing 0.5 mm); the j and k extents are 1 voxel, so every voxel
// of a structure is a surface voxel. Prediction 1 1 1 0 0 0, truth 0 1 1 1 0 0.
//   Dice = 2·2/(3 + 3) = 2/3.
//   pred→truth: voxel 0 → 1: 0.5; voxels 1, 2: 0.  truth→pred: 1, 2: 0; voxel 3 → 2: 0.5.
//   HD = 0.5; ASSD = (0.5 + 0.5)/6 = 1/6; HD95 = percentile of 0 0 0 0 0.5 0.5 at rank 4.75 = 0.5.
TEST(SegmentationMetricsTest, HandComputedLine) {
  const at::Tensor pred = torch::tensor({1, 1, 1, 0, 0, 0}, torch::kUInt8).reshape({1, 1, 6});
  const at::Tensor truth = torch::tensor({0, 1, 1, 1, 0, 0}, torch::kUInt8).reshape({1, 1, 6});
  const auto m = ComputeLabelMetrics(pred, truth, 1, {0.5, 1.0, 1.0});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_DOUBLE_EQ(m->dice, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m->hd, 0.5);
  EXPECT_DOUBLE_EQ(m->hd95, 0.5);
  EXPECT_DOUBLE_EQ(m->assd, 1.0 / 6.0);
  EXPECT_EQ(m->prediction_voxels, 3);
  EXPECT_EQ(m->truth_voxels, 3);
  EXPECT_EQ(m->overlap_voxels, 2);
}

// Two 6x6x4 boxes, the second shifted by (2, 0, 1) voxels, spacing (0.5, 0.7, 2.0) mm.
// The farthest surface voxel is a corner, whose nearest counterpart is the shifted corner:
// HD = sqrt((2·0.5)² + (1·2.0)²) = sqrt(5) mm. Dice: overlap 4·6·3 = 72 of 144 + 144 → 0.5.
// A shift of 3 slices along k only (spacing 2.5 mm) gives HD = 7.5 mm exactly.
TEST(SegmentationMetricsTest, ShiftedCubesAnisotropic) {
  const std::array<int64_t, 3> size = {16, 14, 12};
  const at::Tensor a = Box(size, {3, 4, 2}, {9, 10, 6});
  const at::Tensor b = Box(size, {5, 4, 3}, {11, 10, 7});
  const std::array<double, 3> spacing = {0.5, 0.7, 2.0};
  const auto m = ComputeLabelMetrics(a, b, 1, spacing);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_DOUBLE_EQ(m->dice, 0.5);
  EXPECT_NEAR(m->hd, std::sqrt(5.0), 1e-12);
  // HD95 and ASSD against brute force over the same definitions.
  std::vector<double> all = BruteDirected(a, b, spacing);
  const std::vector<double> back = BruteDirected(b, a, spacing);
  all.insert(all.end(), back.begin(), back.end());
  EXPECT_NEAR(m->assd, std::accumulate(all.begin(), all.end(), 0.0) / all.size(), 1e-12);
  EXPECT_NEAR(m->hd95, Percentile(all, 95), 1e-12);

  const at::Tensor c = Box(size, {3, 4, 5}, {9, 10, 9});
  const auto slab = ComputeLabelMetrics(a, c, 1, {0.5, 0.7, 2.5});
  ASSERT_TRUE(slab.ok());
  EXPECT_DOUBLE_EQ(slab->hd, 7.5);
  EXPECT_DOUBLE_EQ(slab->dice, 2.0 * 6 * 6 * 1 / (144 + 144));
}

TEST(SegmentationMetricsTest, IdenticalVolumesHaveZeroDistances) {
  torch::manual_seed(8);
  const at::Tensor labels = (torch::rand({8, 10, 12}) > 0.6).to(torch::kUInt8);
  const auto m = ComputeLabelMetrics(labels, labels, 1, {0.3, 0.3, 3.0});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->dice, 1.0);
  EXPECT_EQ(m->hd, 0.0);
  EXPECT_EQ(m->hd95, 0.0);
  EXPECT_EQ(m->assd, 0.0);
}

TEST(SegmentationMetricsTest, RandomShapesMatchBruteForce) {
  torch::manual_seed(21);
  const at::Tensor a = (torch::rand({6, 9, 11}) > 0.7).to(torch::kUInt8);
  const at::Tensor b = (torch::rand({6, 9, 11}) > 0.8).to(torch::kUInt8);
  const std::array<double, 3> spacing = {0.4, 0.9, 2.7};
  const auto m = ComputeLabelMetrics(a, b, 1, spacing);
  ASSERT_TRUE(m.ok());
  std::vector<double> all = BruteDirected(a, b, spacing);
  const std::vector<double> back = BruteDirected(b, a, spacing);
  all.insert(all.end(), back.begin(), back.end());
  EXPECT_NEAR(m->hd, *std::max_element(all.begin(), all.end()), 1e-12);
  EXPECT_NEAR(m->hd95, Percentile(all, 95), 1e-12);
  EXPECT_NEAR(m->assd, std::accumulate(all.begin(), all.end(), 0.0) / all.size(), 1e-12);
}

TEST(SegmentationMetricsTest, EmptyStructures) {
  const std::array<int64_t, 3> size = {6, 6, 6};
  const at::Tensor empty = torch::zeros({6, 6, 6}, torch::kUInt8);
  const at::Tensor box = Box(size, {1, 1, 1}, {4, 4, 4});
  const std::array<double, 3> spacing = {1, 1, 1};

  const auto both = ComputeLabelMetrics(empty, empty, 1, spacing);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->dice, 1.0);
  EXPECT_TRUE(std::isnan(both->hd95));
  EXPECT_TRUE(std::isnan(both->assd));
  EXPECT_TRUE(std::isnan(both->hd));

  for (const auto& [pred, truth] : {std::pair{empty, box}, std::pair{box, empty}}) {
    const auto one = ComputeLabelMetrics(pred, truth, 1, spacing);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one->dice, 0.0);
    EXPECT_TRUE(std::isinf(one->hd95) && one->hd95 > 0);
    EXPECT_TRUE(std::isinf(one->assd) && one->assd > 0);
  }
  // The surface-distance core: distances to an empty surface are infinite.
  std::vector<uint8_t> a(216, 0), b(216, 0);
  a[7 + 36] = 1;
  const SurfaceDistances d = ComputeSurfaceDistances(a, b, size, spacing);
  ASSERT_EQ(d.a_to_b.size(), 1u);
  EXPECT_TRUE(std::isinf(d.a_to_b[0]));
  EXPECT_TRUE(d.b_to_a.empty());
}

data::Volume MakeVolume(at::Tensor voxels, std::array<double, 3> spacing) {
  data::Volume v;
  v.geometry.size = {voxels.size(2), voxels.size(1), voxels.size(0)};
  v.geometry.spacing = spacing;
  v.voxels = std::move(voxels);
  return v;
}

TEST(SegmentationMetricsTest, VolumesWithSeveralStructures) {
  const std::array<int64_t, 3> size = {10, 10, 8};
  // Truth: label 1 box, label 2 box; prediction: label 1 exact, label 2 missing.
  const at::Tensor truth = Box(size, {1, 1, 1}, {4, 4, 4}, 1) + Box(size, {6, 6, 4}, {9, 9, 7}, 2);
  const at::Tensor pred = Box(size, {1, 1, 1}, {4, 4, 4}, 1);
  const std::vector<Structure> structures = {{1, "femur"}, {2, "patella"}, {3, "fibula"}};
  const auto metrics = ComputeSegmentationMetrics(MakeVolume(pred, {0.5, 0.5, 3}),
                                                  MakeVolume(truth, {0.5, 0.5, 3}), structures);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  ASSERT_EQ(metrics->size(), 3u);
  EXPECT_EQ((*metrics)[0].structure, "femur");
  EXPECT_EQ((*metrics)[0].label, 1);
  EXPECT_EQ((*metrics)[0].dice, 1.0);
  EXPECT_EQ((*metrics)[0].hd95, 0.0);
  EXPECT_EQ((*metrics)[1].structure, "patella");
  EXPECT_EQ((*metrics)[1].dice, 0.0);
  EXPECT_TRUE(std::isinf((*metrics)[1].hd95));
  EXPECT_EQ((*metrics)[2].dice, 1.0);  // absent from both
  EXPECT_TRUE(std::isnan((*metrics)[2].assd));
}

TEST(SegmentationMetricsTest, RejectsMismatchedGeometry) {
  const at::Tensor labels = torch::zeros({4, 5, 6}, torch::kUInt8);
  const std::vector<Structure> structures = {{1, "tibia"}};
  data::Volume truth = MakeVolume(labels, {0.5, 0.5, 3});

  auto status =
      ComputeSegmentationMetrics(MakeVolume(labels, {0.5, 0.6, 3}), truth, structures).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "prediction spacing (0.5, 0.6, 3) differs from truth spacing (0.5, 0.5, 3)");

  data::Volume shifted = MakeVolume(labels, {0.5, 0.5, 3});
  shifted.geometry.origin = {0, 0, 3};
  status = ComputeSegmentationMetrics(shifted, truth, structures).status();
  EXPECT_EQ(status.message(),
            "prediction origin (0, 0, 3) differs from truth origin (0, 0, 0): the volumes do not "
            "overlay");

  status = ComputeSegmentationMetrics(
               MakeVolume(torch::zeros({4, 5, 7}, torch::kUInt8), {0.5, 0.5, 3}), truth, structures)
               .status();
  EXPECT_EQ(status.message(), "prediction size (7, 5, 4) differs from truth size (6, 5, 4)");

  data::Volume wrong_shape = MakeVolume(labels, {0.5, 0.5, 3});
  wrong_shape.geometry.size = {5, 6, 4};
  data::Volume truth2 = truth;
  truth2.geometry.size = {5, 6, 4};
  status = ComputeSegmentationMetrics(wrong_shape, truth2, structures).status();
  EXPECT_EQ(status.message(),
            "prediction voxels have shape [4, 5, 6] but the geometry size (i, j, k) is (5, 6, 4)");

  status = ComputeLabelMetrics(torch::zeros({4, 5, 6}), labels, 1, {1, 1, 1}).status();
  EXPECT_EQ(status.message(), "prediction volume must hold integer labels, got Float");
  status = ComputeLabelMetrics(labels, labels, 1, {1, 0, 1}).status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("voxel spacing must be finite and > 0"));
}

}  // namespace
}  // namespace fedjoint::common::metrics
