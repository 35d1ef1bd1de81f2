#include "common/data/preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/data/test_volumes.h"

namespace fedjoint::common::data {
namespace {

using test_util::TestGeometry;
using test_util::TestImage;
using test_util::TestLabels;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::array<double, 9> kIdentity{1, 0, 0, 0, 1, 0, 0, 0, 1};

std::string Message(const absl::Status& status) { return std::string(status.message()); }

at::Tensor Values(const std::vector<int64_t>& values, at::ScalarType dtype) {
  return at::tensor(values, at::kLong).to(dtype);
}

// The voxel value at index (i, j, k) of a [k, j, i] tensor.
float ValueAt(const Volume& volume, int64_t i, int64_t j, int64_t k) {
  return volume.voxels[k][j][i].item<float>();
}

// Every voxel of `moved` sits at the physical position of the voxel with the same value in
// `original` (values are unique in TestImage).
void ExpectSamePhysicalVoxels(const Volume& original, const Volume& moved) {
  const Geometry& g = moved.geometry;
  for (int64_t k = 0; k < g.size[2]; ++k) {
    for (int64_t j = 0; j < g.size[1]; ++j) {
      for (int64_t i = 0; i < g.size[0]; ++i) {
        const auto point = IndexToPhysical(g, {double(i), double(j), double(k)});
        const auto index = PhysicalToIndex(original.geometry, point);
        std::array<int64_t, 3> rounded;
        for (int c = 0; c < 3; ++c) {
          rounded[c] = std::llround(index[c]);
          ASSERT_NEAR(index[c], double(rounded[c]), 1e-9);
        }
        ASSERT_EQ(ValueAt(moved, i, j, k), ValueAt(original, rounded[0], rounded[1], rounded[2]))
            << "voxel (" << i << ", " << j << ", " << k << ")";
      }
    }
  }
}

std::array<double, 9> Multiply(const std::array<double, 9>& a, const std::array<double, 9>& b) {
  std::array<double, 9> out{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      for (int m = 0; m < 3; ++m) out[r * 3 + c] += a[r * 3 + m] * b[m * 3 + c];
    }
  }
  return out;
}

std::array<double, 9> RotationZ(double degrees) {
  const double c = std::cos(degrees * std::numbers::pi / 180.0);
  const double s = std::sin(degrees * std::numbers::pi / 180.0);
  return {c, -s, 0, s, c, 0, 0, 0, 1};
}

// ---------------------------------------------------------------------------------------------
// Canonical orientation.

TEST(OrientationTest, FlippedAndPermutedBecomesIdentityAndKeepsPhysicalPositions) {
  const Volume original = TestImage();
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(original);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  const Geometry& g = canonical->volume.geometry;
  EXPECT_EQ(g.direction, kIdentity);
  // Original axes: i -> -y (spacing 0.7, 7 voxels), j -> +z (1.3, 5), k -> -x (2.5, 3).
  EXPECT_EQ(g.size, (std::array<int64_t, 3>{3, 7, 5}));
  EXPECT_EQ(g.spacing, (std::array<double, 3>{2.5, 0.7, 1.3}));
  EXPECT_THAT(canonical->reorientation.axis_from, ElementsAre(2, 0, 1));
  EXPECT_THAT(canonical->reorientation.flipped, ElementsAre(true, true, false));
  EXPECT_DOUBLE_EQ(canonical->reorientation.obliquity_degrees, 0.0);
  EXPECT_FALSE(canonical->reorientation.IsIdentity());
  EXPECT_THAT(canonical->volume.voxels.sizes().vec(), ElementsAre(5, 7, 3));
  EXPECT_TRUE(canonical->volume.voxels.is_contiguous());
  ExpectSamePhysicalVoxels(original, canonical->volume);
}

TEST(OrientationTest, MarkedVoxelKeepsItsPhysicalPosition) {
  Volume original = TestImage();
  original.voxels.zero_();
  original.voxels[2][1][5] = 42.0f;  // (i, j, k) = (5, 1, 2)
  const auto marked = IndexToPhysical(original.geometry, {5, 1, 2});
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(original);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  const at::Tensor& v = canonical->volume.voxels;
  const int64_t flat = v.argmax().item<int64_t>();
  const auto& size = canonical->volume.geometry.size;
  const std::array<double, 3> index{double(flat % size[0]), double(flat / size[0] % size[1]),
                                    double(flat / (size[0] * size[1]))};
  EXPECT_EQ(v.max().item<float>(), 42.0f);
  const auto moved = IndexToPhysical(canonical->volume.geometry, index);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(moved[c], marked[c], 1e-9);
}

TEST(OrientationTest, RoundTripRestoresVoxelsAndGeometryExactly) {
  const Volume original = TestImage();
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(original);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  absl::StatusOr<Volume> back =
      FromCanonicalOrientation(canonical->volume, canonical->reorientation);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(back->voxels, original.voxels));
  EXPECT_TRUE(back->voxels.is_contiguous());
  EXPECT_EQ(back->geometry.size, original.geometry.size);
  EXPECT_EQ(back->geometry.spacing, original.geometry.spacing);
  EXPECT_EQ(back->geometry.origin, original.geometry.origin);
  EXPECT_EQ(back->geometry.direction, original.geometry.direction);
}

TEST(OrientationTest, EverySignedPermutation) {
  const Volume base = TestImage();
  std::array<int, 3> perm{0, 1, 2};
  int cases = 0;
  do {
    for (int signs = 0; signs < 8; ++signs) {
      Volume original = base;
      original.geometry.direction = {0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (int c = 0; c < 3; ++c) {
        original.geometry.direction[perm[c] * 3 + c] = (signs >> c & 1) ? -1.0 : 1.0;
      }
      absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(original);
      ASSERT_TRUE(canonical.ok()) << canonical.status();
      EXPECT_EQ(canonical->volume.geometry.direction, kIdentity);
      const bool identity = perm == std::array<int, 3>{0, 1, 2} && signs == 0;
      EXPECT_EQ(canonical->reorientation.IsIdentity(), identity);
      ExpectSamePhysicalVoxels(original, canonical->volume);
      absl::StatusOr<Volume> back =
          FromCanonicalOrientation(canonical->volume, canonical->reorientation);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_TRUE(at::equal(back->voxels, original.voxels));
      ++cases;
    }
  } while (std::next_permutation(perm.begin(), perm.end()));
  EXPECT_EQ(cases, 48);
}

TEST(OrientationTest, SlightlyObliqueScanPicksTheClosestAxes) {
  Volume original = TestImage();
  original.geometry.direction = Multiply(RotationZ(8.0), original.geometry.direction);
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(original);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  EXPECT_THAT(canonical->reorientation.axis_from, ElementsAre(2, 0, 1));
  EXPECT_THAT(canonical->reorientation.flipped, ElementsAre(true, true, false));
  EXPECT_NEAR(canonical->reorientation.obliquity_degrees, 8.0, 1e-9);
  // The obliquity stays in the direction: close to identity, with positive diagonal.
  const auto& d = canonical->volume.geometry.direction;
  EXPECT_EQ(d, Multiply(RotationZ(8.0), kIdentity));
  for (int c = 0; c < 3; ++c) EXPECT_GT(d[c * 3 + c], 0.99);
  ExpectSamePhysicalVoxels(original, canonical->volume);

  absl::StatusOr<Volume> back =
      FromCanonicalOrientation(canonical->volume, canonical->reorientation);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(back->voxels, original.voxels));
  EXPECT_EQ(back->geometry.direction, original.geometry.direction);
}

TEST(OrientationTest, RestoresPredictionsOfAnotherDtype) {
  const Volume original = TestImage();
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(original);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  Volume prediction{canonical->volume.voxels.to(at::kLong).remainder(3).to(at::kByte),
                    canonical->volume.geometry};
  absl::StatusOr<Volume> back = FromCanonicalOrientation(prediction, canonical->reorientation);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->voxels.scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(back->voxels, original.voxels.to(at::kLong).remainder(3).to(at::kByte)));

  Volume wrong{at::zeros({3, 5, 7}, at::kByte), canonical->volume.geometry};
  absl::StatusOr<Volume> refused = FromCanonicalOrientation(wrong, canonical->reorientation);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(Message(refused.status()),
              HasSubstr("voxel shape [3, 5, 7] is not the canonical shape [5, 7, 3]"));
}

TEST(OrientationTest, RejectsMismatchedVoxels) {
  Volume bad = TestImage();
  bad.voxels = bad.voxels.reshape({5, 3, 7});
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(bad);
  ASSERT_FALSE(canonical.ok());
  EXPECT_EQ(canonical.status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Resampling.

// A canonical 10x8x4 volume whose voxel value is its physical x coordinate: linear in space, so
// linear interpolation must reproduce it exactly inside the grid.
Volume RampVolume() {
  Geometry g;
  g.size = {10, 8, 4};
  g.spacing = {1.0, 0.8, 3.0};
  g.origin = {-4.0, 2.0, 10.0};
  at::Tensor x = at::arange(10, at::kFloat).mul(1.0).add(-4.0);
  return Volume{x.view({1, 1, 10}).expand({4, 8, 10}).contiguous(), g};
}

TEST(ResampleTest, GridWithSpacingKeepsExtentAndCentre) {
  const Geometry g = RampVolume().geometry;
  const Geometry fine = GridWithSpacing(g, {0.5, 0.3, 0});
  EXPECT_EQ(fine.size, (std::array<int64_t, 3>{20, 21, 4}));  // 8 * 0.8 / 0.3 = 21.3 -> 21
  EXPECT_EQ(fine.spacing, (std::array<double, 3>{0.5, 0.3, 3.0}));
  EXPECT_EQ(fine.direction, g.direction);
  const auto centre = IndexToPhysical(g, {4.5, 3.5, 1.5});
  const auto fine_centre = IndexToPhysical(fine, {9.5, 10.0, 1.5});
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(fine_centre[c], centre[c], 1e-12);
  EXPECT_DOUBLE_EQ(fine.origin[2], g.origin[2]);  // the kept axis does not move
  // Extent along i: 10 x 1.0 = 20 x 0.5.
  EXPECT_DOUBLE_EQ(fine.size[0] * fine.spacing[0], g.size[0] * g.spacing[0]);
}

TEST(ResampleTest, LinearReproducesALinearRamp) {
  const Volume ramp = RampVolume();
  absl::StatusOr<Volume> fine = ResampleToSpacing(ramp, {0.25, 0, 0});
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->geometry.size, (std::array<int64_t, 3>{40, 8, 4}));
  for (int64_t i = 0; i < 40; ++i) {
    const double x = IndexToPhysical(fine->geometry, {double(i), 0, 0})[0];
    const double expected = std::clamp(x, -4.0, 5.0);  // border value beyond the first/last centre
    EXPECT_NEAR(ValueAt(*fine, i, 3, 2), expected, 1e-5) << "i = " << i;
  }
}

TEST(ResampleTest, InPlaneKeepsTheSliceAxis) {
  Volume v = TestImage();
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(v);
  ASSERT_TRUE(canonical.ok());
  const Geometry& g = canonical->volume.geometry;  // spacing (2.5, 0.7, 1.3), size (3, 7, 5)
  absl::StatusOr<Volume> resampled = ResampleInPlane(canonical->volume, 2, 0.5);
  ASSERT_TRUE(resampled.ok()) << resampled.status();
  const Geometry& r = resampled->geometry;
  EXPECT_EQ(r.size, (std::array<int64_t, 3>{15, 10, 5}));
  EXPECT_EQ(r.spacing, (std::array<double, 3>{0.5, 0.5, 1.3}));
  EXPECT_DOUBLE_EQ(r.origin[2], g.origin[2]);
  EXPECT_THAT(resampled->voxels.sizes().vec(), ElementsAre(5, 10, 15));
  // Slice k of the result only mixes voxels of slice k of the input.
  for (int64_t k = 0; k < 5; ++k) {
    const at::Tensor in = canonical->volume.voxels[k];
    const at::Tensor out = resampled->voxels[k];
    EXPECT_GE(out.min().item<float>(), in.min().item<float>() - 1e-4);
    EXPECT_LE(out.max().item<float>(), in.max().item<float>() + 1e-4);
  }
}

TEST(ResampleTest, SameGridIsACopy) {
  const Volume v = TestImage();
  absl::StatusOr<Volume> same = ResampleToGrid(v, v.geometry);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(at::equal(same->voxels, v.voxels));
}

TEST(ResampleTest, NearestKeepsLabelsAndInvertsAnUpsampling) {
  const Volume labels = TestLabels(at::kByte, 5);
  absl::StatusOr<Volume> fine =
      ResampleToSpacing(labels, {0.35, 0.65, 1.25}, {.interpolation = Interpolation::kNearest});
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->voxels.scalar_type(), at::kByte);
  EXPECT_EQ(fine->geometry.size, (std::array<int64_t, 3>{14, 10, 6}));
  EXPECT_LE(fine->voxels.max().item<int>(), 4);
  // Each original voxel became 2x2x2 copies of itself.
  at::Tensor expected =
      labels.voxels.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2);
  EXPECT_TRUE(at::equal(fine->voxels, expected));

  absl::StatusOr<Volume> back =
      ResampleToGrid(*fine, labels.geometry, {.interpolation = Interpolation::kNearest});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(back->voxels, labels.voxels));
}

TEST(ResampleTest, OutsideTheSourceTakesTheOutsideValue) {
  const Volume ramp = RampVolume();
  Geometry wider = ramp.geometry;
  wider.size[0] = 14;
  wider.origin[0] -= 2.0;  // two voxels before and two after the source
  absl::StatusOr<Volume> out = ResampleToGrid(ramp, wider, {.outside_value = -100});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(ValueAt(*out, 0, 0, 0), -100.0f);
  EXPECT_EQ(ValueAt(*out, 1, 0, 0), -100.0f);
  EXPECT_EQ(ValueAt(*out, 2, 0, 0), -4.0f);
  EXPECT_EQ(ValueAt(*out, 11, 7, 3), 5.0f);
  EXPECT_EQ(ValueAt(*out, 12, 7, 3), -100.0f);
}

TEST(ResampleTest, RefusesLinearLabelsAndOtherDirections) {
  absl::StatusOr<Volume> linear = ResampleToSpacing(TestLabels(at::kByte), {0.5, 0.5, 0.5});
  ASSERT_FALSE(linear.ok());
  EXPECT_EQ(linear.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(linear.status()), HasSubstr("use nearest"));

  const Volume v = TestImage();
  Geometry rotated = v.geometry;
  rotated.direction = kIdentity;
  absl::StatusOr<Volume> other = ResampleToGrid(v, rotated);
  ASSERT_FALSE(other.ok());
  EXPECT_THAT(Message(other.status()), HasSubstr("same direction"));

  absl::StatusOr<Volume> bad_axis = ResampleInPlane(v, 3, 0.5);
  ASSERT_FALSE(bad_axis.ok());
  EXPECT_THAT(Message(bad_axis.status()), HasSubstr("axis 3 is not a voxel axis"));
}

// ---------------------------------------------------------------------------------------------
// Intensity normalization.

TEST(NormalizeTest, PercentilesFollowNumpy) {
  absl::StatusOr<IntensityStats> stats = ComputeIntensityStats(at::arange(1000, at::kFloat));
  ASSERT_TRUE(stats.ok()) << stats.status();
  // numpy.percentile(arange(1000), [0.5, 99.5]) = [4.995, 994.005]
  EXPECT_NEAR(stats->lower, 4.995, 1e-9);
  EXPECT_NEAR(stats->upper, 994.005, 1e-9);
  EXPECT_NEAR(stats->mean, 499.5, 1e-9);
}

TEST(NormalizeTest, ClippedValuesHaveZeroMeanAndUnitStd) {
  at::manual_seed(7);
  at::Tensor image = at::randn({6, 40, 50}, at::kFloat).mul_(30).add_(200);
  image[0][0][0] = 1e6f;  // a metal artefact
  image[1][1][1] = -1e6f;
  absl::StatusOr<at::Tensor> normalized = NormalizeIntensity(image);
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_EQ(normalized->sizes(), image.sizes());
  EXPECT_NEAR(normalized->mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(normalized->std(/*unbiased=*/false).item<double>(), 1.0, 1e-4);
  // The outliers are clipped to the percentile bounds, so they are not extreme any more.
  EXPECT_LT(normalized->abs().max().item<float>(), 4.0f);
  EXPECT_FLOAT_EQ((*normalized)[0][0][0].item<float>(), normalized->max().item<float>());
}

TEST(NormalizeTest, ConstantImageBecomesZeros) {
  absl::StatusOr<at::Tensor> normalized = NormalizeIntensity(at::full({3, 4, 5}, 17.0f));
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_TRUE(at::equal(*normalized, at::zeros({3, 4, 5})));
}

TEST(NormalizeTest, RejectsBadInput) {
  at::Tensor with_nan = at::ones({2, 2, 2});
  with_nan[1][1][1] = NAN;
  EXPECT_THAT(Message(NormalizeIntensity(with_nan).status()), HasSubstr("NaN"));
  EXPECT_THAT(
      Message(NormalizeIntensity(at::ones({2}), {.lower_percentile = 60, .upper_percentile = 40})
                  .status()),
      HasSubstr("0 <= lower <= upper <= 100"));
  EXPECT_THAT(Message(NormalizeIntensity(at::ones({2}, at::kByte)).status()),
              HasSubstr("expected float32"));
  EXPECT_FALSE(NormalizeIntensity(at::ones({0})).ok());
}

// ---------------------------------------------------------------------------------------------
// Slicing and crop/pad.

TEST(SliceTest, EachAxisAndBack) {
  const at::Tensor voxels = TestImage().voxels;  // [k, j, i] = [3, 5, 7]
  const std::vector<std::vector<int64_t>> shapes{{7, 3, 5}, {5, 3, 7}, {3, 5, 7}};
  for (int axis = 0; axis < 3; ++axis) {
    absl::StatusOr<at::Tensor> slices = ToSlices(voxels, axis);
    ASSERT_TRUE(slices.ok()) << slices.status();
    EXPECT_EQ(slices->sizes().vec(), shapes[axis]) << "axis " << axis;
    EXPECT_TRUE(slices->is_contiguous());
    absl::StatusOr<at::Tensor> back = FromSlices(*slices, axis);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(at::equal(*back, voxels)) << "axis " << axis;
  }
  // Slice 4 along i holds the voxels with i = 4, as [k, j].
  EXPECT_TRUE(at::equal((*ToSlices(voxels, 0))[4], voxels.select(2, 4)));
  EXPECT_TRUE(at::equal((*ToSlices(voxels, 1))[2], voxels.select(1, 2)));
  EXPECT_FALSE(ToSlices(voxels, -1).ok());
  EXPECT_FALSE(ToSlices(voxels[0], 2).ok());
}

TEST(CropPadTest, CropsAndPadsAroundTheCentre) {
  // [2, 7, 4]: crop H 7 -> 4 (drop 1 before, 2 after), pad W 4 -> 7 (1 before, 2 after).
  const at::Tensor image = at::arange(2 * 7 * 4, at::kFloat).view({2, 7, 4});
  absl::StatusOr<at::Tensor> out = CenterCropOrPad(image, 4, 7, /*pad_value=*/-1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->sizes().vec(), ElementsAre(2, 4, 7));
  using at::indexing::Slice;
  EXPECT_TRUE(at::equal(out->index({Slice(), Slice(), Slice(1, 5)}),
                        image.index({Slice(), Slice(1, 5), Slice()})));
  EXPECT_TRUE(out->index({Slice(), Slice(), 0}).eq(-1).all().item<bool>());
  EXPECT_TRUE(out->index({Slice(), Slice(), Slice(5, 7)}).eq(-1).all().item<bool>());

  absl::StatusOr<at::Tensor> undone = UndoCenterCropOrPad(*out, 7, 4, /*fill_value=*/0);
  ASSERT_TRUE(undone.ok()) << undone.status();
  EXPECT_THAT(undone->sizes().vec(), ElementsAre(2, 7, 4));
  EXPECT_TRUE(
      at::equal(undone->index({Slice(), Slice(1, 5)}), image.index({Slice(), Slice(1, 5)})));
  EXPECT_TRUE(undone->index({Slice(), 0}).eq(0).all().item<bool>());  // cropped away: fill
  EXPECT_TRUE(undone->index({Slice(), Slice(5, 7)}).eq(0).all().item<bool>());
}

TEST(CropPadTest, PaddingIsExactlyInvertible) {
  at::manual_seed(3);
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{5, 3}, {6, 4}, {1, 1}}) {
    const at::Tensor labels = at::randint(0, 4, {3, h, w}, at::kByte);
    absl::StatusOr<at::Tensor> padded = CenterCropOrPad(labels, 8, 9);
    ASSERT_TRUE(padded.ok()) << padded.status();
    EXPECT_EQ(padded->scalar_type(), at::kByte);
    absl::StatusOr<at::Tensor> back = UndoCenterCropOrPad(*padded, h, w);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(at::equal(*back, labels)) << h << "x" << w;
  }
  EXPECT_FALSE(CenterCropOrPad(at::ones({4}), 2, 2).ok());
  EXPECT_FALSE(CenterCropOrPad(at::ones({4, 4}), 0, 2).ok());
}

// ---------------------------------------------------------------------------------------------
// Label remapping.

TEST(RemapLabelsTest, MapsValuesToStructureIndices) {
  const at::Tensor labels = Values({0, 2, 5, 2, 0, 5}, at::kByte).view({1, 2, 3});
  absl::StatusOr<at::Tensor> mapped = RemapLabels(labels, {.value_to_index = {{2, 1}, {5, 2}}});
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(mapped->scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(*mapped, Values({0, 1, 2, 1, 0, 2}, at::kByte).view({1, 2, 3})));
}

TEST(RemapLabelsTest, Int16ValuesAndExplicitBackground) {
  const at::Tensor labels = Values({-1, 300, 1000, 300}, at::kShort);
  absl::StatusOr<at::Tensor> mapped =
      RemapLabels(labels, {.value_to_index = {{-1, 0}, {300, 3}, {1000, 255}}});
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_TRUE(at::equal(*mapped, Values({0, 3, 255, 3}, at::kByte)));
}

TEST(RemapLabelsTest, UnlistedValuesAreListedOrSentToBackground) {
  const at::Tensor labels = Values({0, 1, 7, 9, 7}, at::kByte);
  absl::StatusOr<at::Tensor> refused = RemapLabels(labels, {.value_to_index = {{1, 1}}});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(refused.status()),
              AllOf(HasSubstr("label values [7, 9] are present but not in the mapping"),
                    HasSubstr("mapped values: [1]")));

  absl::StatusOr<at::Tensor> lenient =
      RemapLabels(labels, {.value_to_index = {{1, 1}}, .unlisted_to_background = true});
  ASSERT_TRUE(lenient.ok()) << lenient.status();
  EXPECT_TRUE(at::equal(*lenient, Values({0, 1, 0, 0, 0}, at::kByte)));
}

TEST(RemapLabelsTest, RejectsBadIndicesAndDtypes) {
  EXPECT_THAT(
      Message(RemapLabels(at::zeros({2}, at::kByte), {.value_to_index = {{1, 256}}}).status()),
      HasSubstr("label value 1 maps to structure index 256, outside [0, 255]"));
  EXPECT_THAT(Message(RemapLabels(at::zeros({2}, at::kFloat), {}).status()),
              HasSubstr("expected uint8, int16, int32 or int64"));
}

// ---------------------------------------------------------------------------------------------
// The whole chain of preprocess.h, forward for a label volume and back for its "prediction".

TEST(PipelineTest, PredictionGoesBackOntoTheScanGrid) {
  const Volume labels = TestLabels(at::kByte, 5);
  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(labels);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  const Geometry canonical_grid = canonical->volume.geometry;  // spacing (2.5, 0.7, 1.3)
  const ResampleOptions nearest{.interpolation = Interpolation::kNearest};
  absl::StatusOr<Volume> fine = ResampleToSpacing(canonical->volume, {1.25, 0.35, 0}, nearest);
  ASSERT_TRUE(fine.ok()) << fine.status();
  absl::StatusOr<at::Tensor> slices = ToSlices(fine->voxels, 2);
  ASSERT_TRUE(slices.ok()) << slices.status();
  EXPECT_THAT(slices->sizes().vec(), ElementsAre(5, 14, 6));
  absl::StatusOr<at::Tensor> network_input = CenterCropOrPad(*slices, 16, 4);
  ASSERT_TRUE(network_input.ok()) << network_input.status();

  // The "network" predicts its input; the way back must land every label where it came from
  // (except the in-plane columns cropped away, which come back as background).
  absl::StatusOr<at::Tensor> prediction = UndoCenterCropOrPad(*network_input, 14, 6);
  ASSERT_TRUE(prediction.ok()) << prediction.status();
  absl::StatusOr<at::Tensor> voxels = FromSlices(*prediction, 2);
  ASSERT_TRUE(voxels.ok()) << voxels.status();
  absl::StatusOr<Volume> coarse =
      ResampleToGrid(Volume{*voxels, fine->geometry}, canonical_grid, nearest);
  ASSERT_TRUE(coarse.ok()) << coarse.status();
  absl::StatusOr<Volume> back = FromCanonicalOrientation(*coarse, canonical->reorientation);
  ASSERT_TRUE(back.ok()) << back.status();

  EXPECT_EQ(back->geometry.origin, labels.geometry.origin);
  EXPECT_EQ(back->geometry.direction, labels.geometry.direction);
  // The crop 6 -> 4 dropped fine columns 0 and 5, halves of canonical i = 0 and 2 (original
  // k = 2 and 0); canonical i = 1 (original k = 1) is untouched and must come back exactly.
  EXPECT_TRUE(at::equal(back->voxels[1], labels.voxels[1]));
  absl::StatusOr<at::Tensor> uncropped = CenterCropOrPad(*slices, 16, 6);
  ASSERT_TRUE(uncropped.ok());
  absl::StatusOr<at::Tensor> full = FromSlices(*UndoCenterCropOrPad(*uncropped, 14, 6), 2);
  absl::StatusOr<Volume> full_coarse =
      ResampleToGrid(Volume{*full, fine->geometry}, canonical_grid, nearest);
  ASSERT_TRUE(full_coarse.ok());
  absl::StatusOr<Volume> full_back =
      FromCanonicalOrientation(*full_coarse, canonical->reorientation);
  ASSERT_TRUE(full_back.ok());
  EXPECT_TRUE(at::equal(full_back->voxels, labels.voxels));
}

}  // namespace
}  // namespace fedjoint::common::data
