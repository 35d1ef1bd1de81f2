#include <cmath>
#include <filesystem>
#include <map>
#include <numbers>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/config/model_config_json.h"
#include "common/data/slice_options.h"
#include "common/data/volume.h"
#include "common/model/model_factory.h"
#include "common/model/shape_autoencoder.h"
#include "site_agent/inference/segmenter.h"
#include "site_agent/inference/weights.h"
#include "tests/common/model/norm_test_util.h"
#include "tests/site_agent/training/test_data.h"

namespace fedjoint::site_agent::inference {
namespace {

using common::model::BuildUNet;

namespace data = common::data;
namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A scan of an off-centre ball on a grid with anisotropic voxels and a direction that is neither
// identity nor a pure permutation (the knee's sagittal axes, then tilted 10 degrees about LPS z).
struct BallScan {
  data::Volume image;
  data::Volume truth;  // uint8, 1 inside the ball
};

BallScan MakeBallScan() {
  data::Geometry g;
  g.size = {37, 29, 11};
  g.spacing = {0.7, 0.9, 3.0};
  const double a = 10.0 * std::numbers::pi / 180.0;
  const double base[9] = {0, 0, -1, 1, 0, 0, 0, -1, 0};  // columns: P, I, R (sagittal)
  const double rot[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      double v = 0;
      for (int k = 0; k < 3; ++k) v += rot[r * 3 + k] * base[k * 3 + c];
      g.direction[r * 3 + c] = v;
    }
  }
  g.origin = {-12.0, 7.5, 20.0};
  const std::array<double, 3> centre = data::IndexToPhysical(
      g, {0.6 * (g.size[0] - 1), 0.45 * (g.size[1] - 1), 0.5 * (g.size[2] - 1)});
  at::Tensor image = torch::zeros({g.size[2], g.size[1], g.size[0]}, torch::kFloat);
  at::Tensor truth = torch::zeros({g.size[2], g.size[1], g.size[0]}, torch::kByte);
  for (int64_t k = 0; k < g.size[2]; ++k) {
    for (int64_t j = 0; j < g.size[1]; ++j) {
      for (int64_t i = 0; i < g.size[0]; ++i) {
        auto p = data::IndexToPhysical(
            g, {static_cast<double>(i), static_cast<double>(j), static_cast<double>(k)});
        const double d = std::hypot(p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]);
        const bool inside = d < 9.0;
        image[k][j][i] = inside ? 100.0f + 0.1f * static_cast<float>(i) : 10.0f;
        truth[k][j][i] = inside ? 1 : 0;
      }
    }
  }
  return {{image, g}, {truth, g}};
}

// Stands in for a network: "bone" wherever the normalized intensity is above average.
at::Tensor ThresholdPredictor(const at::Tensor& slices) {
  at::Tensor p = torch::sigmoid(20.0 * slices);
  return torch::cat({1 - p, p}, 1);
}

double Dice(const at::Tensor& a, const at::Tensor& b) {
  const double inter = (a.gt(0) & b.gt(0)).sum().item<double>();
  return 2 * inter / (a.gt(0).sum().item<double>() + b.gt(0).sum().item<double>());
}

void ExpectSameGeometry(const data::Volume& out, const data::Volume& in) {
  EXPECT_EQ(out.voxels.sizes(), in.voxels.sizes());
  EXPECT_EQ(out.voxels.scalar_type(), at::kByte);
  EXPECT_EQ(out.geometry.size, in.geometry.size);
  EXPECT_EQ(out.geometry.spacing, in.geometry.spacing);
  EXPECT_EQ(out.geometry.origin, in.geometry.origin);
  EXPECT_EQ(out.geometry.direction, in.geometry.direction);
}

TEST(SegmenterTest, PredictionOverlaysTheScanExactlyWithoutResampling) {
  BallScan scan = MakeBallScan();
  v1::ModelConfig config = training::test_util::TinyModel();
  config.set_in_plane_spacing_mm(0);  // native pixels: every step is an exact permutation
  config.set_input_size(32);
  auto result = SegmentVolume(scan.image, config, 2, ThresholdPredictor, 4);
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectSameGeometry(result->labels, scan.image);
  EXPECT_EQ(result->slice_axis, 0);  // the thick axis (3 mm) is LPS x after reorientation
  EXPECT_TRUE(torch::equal(result->labels.voxels, scan.truth.voxels));
}

TEST(SegmenterTest, PredictionOverlaysTheScanAfterInPlaneResampling) {
  BallScan scan = MakeBallScan();
  v1::ModelConfig config = training::test_util::TinyModel();
  config.set_in_plane_spacing_mm(1.3);
  config.set_input_size(32);
  auto result = SegmentVolume(scan.image, config, 2, ThresholdPredictor, 3);
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectSameGeometry(result->labels, scan.image);
  EXPECT_GT(Dice(result->labels.voxels, scan.truth.voxels), 0.93);
  // Disagreements only on the boundary: the centre of mass is where the ball is.
  auto centroid = [](const at::Tensor& mask) {
    at::Tensor idx = mask.gt(0).nonzero().to(torch::kDouble);
    return idx.mean(0);
  };
  EXPECT_LT(
      (centroid(result->labels.voxels) - centroid(scan.truth.voxels)).abs().max().item<double>(),
      0.3);
}

TEST(SegmenterTest, NetworkOutputHasTheInputGeometry) {
  BallScan scan = MakeBallScan();
  v1::ModelConfig config = training::test_util::TinyModel({"ankle", "knee"});
  config.set_input_size(32);
  auto net = BuildUNet(config, 3);
  ASSERT_TRUE(net.ok());
  const fs::path dir = training::test_util::TempDir("segmenter");
  ASSERT_TRUE(WriteModelFile(dir / "model.safetensors", StateDict(**net), config).ok());
  auto segmenter = Segmenter::Load(dir, {.batch_size = 5, .threads = 1});
  ASSERT_TRUE(segmenter.ok()) << segmenter.status();
  EXPECT_EQ((*segmenter)->config().SerializeAsString(), config.SerializeAsString());
  auto result = (*segmenter)->Segment(scan.image, "knee");
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectSameGeometry(result->labels, scan.image);
  EXPECT_LE(result->labels.voxels.max().item<int64_t>(), 4);
  EXPECT_THAT((*segmenter)->Segment(scan.image, "hip").status().message(),
              HasSubstr("joint 'hip' is not one of the model's joints [ankle, knee]"));

  config.set_variant("shared");
  auto shared = BuildUNet(config, 3);
  ASSERT_TRUE(shared.ok());
  auto shared_segmenter = Segmenter::FromModel(config, *shared, {.batch_size = 16, .threads = 1});
  ASSERT_TRUE(shared_segmenter.ok());
  auto shared_result = (*shared_segmenter)->Segment(scan.image, "ankle");
  ASSERT_TRUE(shared_result.ok()) << shared_result.status();
  ExpectSameGeometry(shared_result->labels, scan.image);
  EXPECT_LE(shared_result->labels.voxels.max().item<int64_t>(), 3);
  std::filesystem::remove_all(dir);
}

using common::model::test_util::RandomizeNorms;
using common::model::test_util::Snapshot;

// Segment() runs the network with its BatchNorms folded (channels-last, InferenceMode); the
// labels must be those of the network as it is, in eval mode, and the model must stay untouched.
TEST(SegmenterTest, FoldedNetworkGivesTheLabelsOfTheUnfoldedOne) {
  BallScan scan = MakeBallScan();
  for (const std::string variant : {"domain", "shared"}) {
    SCOPED_TRACE(variant);
    v1::ModelConfig config = training::test_util::TinyModel({"ankle", "knee", "shoulder"});
    config.set_input_size(32);
    config.set_variant(variant);
    torch::manual_seed(11);
    auto net = BuildUNet(config, 3);
    ASSERT_TRUE(net.ok());
    RandomizeNorms(**net);
    (*net)->train();
    auto folded = Segmenter::FromModel(config, *net, {.batch_size = 5, .threads = 1});
    auto unfolded = Segmenter::FromModel(config, *net,
                                         {.batch_size = 5, .threads = 1, .fold_batch_norm = false});
    ASSERT_TRUE(folded.ok() && unfolded.ok());
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE(round);
      // The second round changes the statistics in between: every Segment() folds afresh.
      if (round == 1) RandomizeNorms(**net);
      const std::map<std::string, at::Tensor> before = Snapshot(**net);
      auto actual = (*folded)->Segment(scan.image, "knee");
      ASSERT_TRUE(actual.ok()) << actual.status();
      EXPECT_TRUE((*net)->is_training());
      for (const auto& [name, tensor] : Snapshot(**net)) {
        EXPECT_TRUE(torch::equal(tensor, before.at(name))) << name;
      }
      auto expected = (*unfolded)->Segment(scan.image, "knee");
      ASSERT_TRUE(expected.ok()) << expected.status();
      ExpectSameGeometry(actual->labels, scan.image);
      const int64_t differ =
          actual->labels.voxels.ne(expected->labels.voxels).sum().item<int64_t>();
      // Float rounding can only flip a voxel whose two best classes tie to ~1e-6.
      EXPECT_LE(differ, expected->labels.voxels.numel() / 1000);
      EXPECT_GT(expected->labels.voxels.max().item<int64_t>(), 0);
    }
  }
}

}  // namespace
}  // namespace fedjoint::site_agent::inference
