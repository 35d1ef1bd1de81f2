#include "common/data/augment.h"

#include <set>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::data {
namespace {

using ::testing::HasSubstr;

// [B, 1, H, W] images with a smooth gradient plus texture, and [B, H, W] labels.
at::Tensor TestImages(int64_t batch, int64_t height, int64_t width) {
  at::Tensor y = at::arange(height, at::kFloat).view({1, 1, height, 1});
  at::Tensor x = at::arange(width, at::kFloat).view({1, 1, 1, width});
  at::Tensor b = at::arange(batch, at::kFloat).view({batch, 1, 1, 1});
  return (x * 0.05f + y * 0.02f + (x * 0.7f + y * 1.3f + b).sin()).contiguous();
}

at::Tensor TestLabels(int64_t batch, int64_t height, int64_t width) {
  at::Tensor labels = at::zeros({batch, height, width}, at::kLong);
  labels.slice(1, height / 4, height / 2).slice(2, width / 4, width / 2).fill_(1);
  labels.slice(1, height / 2, 3 * height / 4).slice(2, width / 2, 3 * width / 4).fill_(3);
  return labels;
}

AugmentOptions Everything() {
  AugmentOptions o;
  o.rotation_probability = 1;
  o.scale_probability = 1;
  o.flip_width = true;
  o.flip_height = true;
  o.flip_probability = 0.5;
  o.elastic_probability = 1;
  o.bias_field_probability = 1;
  o.gamma_probability = 1;
  o.contrast_probability = 1;
  o.noise_probability = 1;
  return o;
}

AugmentOptions GeometricOnly() {
  AugmentOptions o = AugmentOptions::None();
  o.rotation_probability = 1;
  o.max_rotation_degrees = 40;
  o.scale_probability = 1;
  return o;
}

std::set<int64_t> Values(const at::Tensor& t) {
  at::Tensor u = std::get<0>(at::_unique(t)).to(at::kLong).contiguous();
  return std::set<int64_t>(u.data_ptr<int64_t>(), u.data_ptr<int64_t>() + u.numel());
}

TEST(AugmentTest, SameSeedGivesIdenticalOutput) {
  at::Tensor images = TestImages(4, 32, 40);
  at::Tensor labels = TestLabels(4, 32, 40);
  const std::vector<uint64_t> seeds{11, 12, 13, 14};
  auto a = Augment(images, labels, Everything(), seeds);
  auto b = Augment(images, labels, Everything(), seeds);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(at::equal(a->images, b->images));
  EXPECT_TRUE(at::equal(a->labels, b->labels));
  EXPECT_FALSE(at::allclose(a->images, images));
  // Another seed, another augmentation.
  auto c = Augment(images, labels, Everything(), std::vector<uint64_t>{21, 22, 23, 24});
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(at::equal(a->images, c->images));
  // The inputs are untouched.
  EXPECT_TRUE(at::equal(images, TestImages(4, 32, 40)));
  EXPECT_TRUE(at::equal(labels, TestLabels(4, 32, 40)));
}

TEST(AugmentTest, SampleResultDoesNotDependOnTheRestOfTheBatch) {
  at::Tensor images = TestImages(3, 24, 24);
  at::Tensor labels = TestLabels(3, 24, 24);
  auto batch = Augment(images, labels, Everything(), std::vector<uint64_t>{5, 6, 7});
  auto single =
      Augment(images.slice(0, 1, 2), labels.slice(0, 1, 2), Everything(), std::vector<uint64_t>{6});
  ASSERT_TRUE(batch.ok() && single.ok());
  EXPECT_TRUE(at::equal(batch->images[1], single->images[0]));
  EXPECT_TRUE(at::equal(batch->labels[1], single->labels[0]));
}

TEST(AugmentTest, AllProbabilitiesZeroIsTheIdentity) {
  at::Tensor images = TestImages(3, 16, 20);
  at::Tensor labels = TestLabels(3, 16, 20).to(at::kByte);
  auto out = Augment(images, labels, AugmentOptions::None(), std::vector<uint64_t>{1, 2, 3});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(at::equal(out->images, images));
  EXPECT_TRUE(at::equal(out->labels, labels));
  EXPECT_EQ(out->labels.scalar_type(), at::kByte);
  EXPECT_NE(out->images.data_ptr(), images.data_ptr());  // a copy, not an alias
}

TEST(AugmentTest, LabelsKeepTheirValueSetUnderRotationScaleAndElastic) {
  at::Tensor images = TestImages(8, 32, 32);
  at::Tensor labels = TestLabels(8, 32, 32);
  AugmentOptions options = GeometricOnly();
  options.elastic_probability = 1;
  options.elastic_magnitude = 2;
  std::vector<uint64_t> seeds{1, 2, 3, 4, 5, 6, 7, 8};
  auto out = Augment(images, labels, options, seeds);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(at::equal(out->labels, labels));
  EXPECT_EQ(Values(out->labels), (std::set<int64_t>{0, 1, 3}));
  EXPECT_EQ(out->labels.scalar_type(), at::kLong);
}

TEST(AugmentTest, ImageAndLabelStayAligned) {
  // A bright square on a dark background, labelled 1: after any geometric transform the label
  // must still cover the bright pixels.
  const int64_t size = 64;
  at::Tensor labels = at::zeros({6, size, size}, at::kLong);
  labels.slice(1, 12, 36).slice(2, 20, 40).fill_(1);
  at::Tensor images = labels.to(at::kFloat).unsqueeze(1).contiguous();
  AugmentOptions options = GeometricOnly();
  options.flip_width = true;
  options.flip_height = true;
  options.flip_probability = 0.5;
  options.elastic_probability = 0.5;
  auto out = Augment(images, labels, options, std::vector<uint64_t>{31, 32, 33, 34, 35, 36});
  ASSERT_TRUE(out.ok()) << out.status();
  for (int64_t b = 0; b < 6; ++b) {
    at::Tensor bright = out->images[b][0].gt(0.5);
    at::Tensor label = out->labels[b].eq(1);
    const double overlap = bright.logical_and(label).sum().item<double>();
    const double either = bright.logical_or(label).sum().item<double>();
    EXPECT_GT(overlap / either, 0.9) << "sample " << b;
    EXPECT_FALSE(at::equal(label, labels[b].eq(1))) << "sample " << b << " did not move";
  }
}

TEST(AugmentTest, RotationOfANonSquareSliceIsARotation) {
  // A 90 degree rotation of a 40 x 20 slice maps the centred horizontal bar to a vertical one of
  // the same length (no shear from the aspect ratio).
  at::Tensor labels = at::zeros({1, 40, 20}, at::kLong);
  labels.slice(1, 19, 21).slice(2, 5, 15).fill_(1);  // 2 rows x 10 columns, centred
  at::Tensor images = labels.to(at::kFloat).unsqueeze(1).contiguous();
  AugmentOptions options = AugmentOptions::None();
  options.rotation_probability = 1;
  options.max_rotation_degrees = 90;
  // Find a seed whose angle is close to +-90 degrees: the bar is then vertical.
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    auto out = Augment(images, labels, options, std::vector<uint64_t>{seed});
    ASSERT_TRUE(out.ok());
    at::Tensor rows = out->labels[0].sum(1).gt(0);
    at::Tensor cols = out->labels[0].sum(0).gt(0);
    if (cols.sum().item<int64_t>() <= 2) {
      // Sheared by the aspect ratio, the bar would be 20 or 5 rows long.
      EXPECT_THAT(rows.sum().item<int64_t>(),
                  ::testing::AllOf(::testing::Ge(9), ::testing::Le(11)));
      EXPECT_THAT(out->labels[0].sum().item<int64_t>(),
                  ::testing::AllOf(::testing::Ge(17), ::testing::Le(23)));
      return;
    }
  }
  FAIL() << "no seed gave a near-vertical bar";
}

TEST(AugmentTest, FlipOnlyMirrorsExactly) {
  at::Tensor images = TestImages(16, 12, 10);
  at::Tensor labels = TestLabels(16, 12, 10);
  AugmentOptions options = AugmentOptions::None();
  options.flip_width = true;
  options.flip_probability = 0.5;
  std::vector<uint64_t> seeds(16);
  for (size_t i = 0; i < seeds.size(); ++i) seeds[i] = 100 + i;
  auto out = Augment(images, labels, options, seeds);
  ASSERT_TRUE(out.ok());
  int flipped = 0;
  for (int64_t b = 0; b < 16; ++b) {
    if (at::equal(out->labels[b], labels[b])) {
      EXPECT_TRUE(at::equal(out->images[b], images[b]));
    } else {
      ++flipped;
      EXPECT_TRUE(at::equal(out->labels[b], labels[b].flip({1})));
      EXPECT_TRUE(at::allclose(out->images[b], images[b].flip({2}), 1e-5, 1e-5));
    }
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, 16);
}

TEST(AugmentTest, IntensityTransformsLeaveLabelsAlone) {
  at::Tensor images = TestImages(4, 16, 16);
  at::Tensor labels = TestLabels(4, 16, 16);
  AugmentOptions options = Everything();
  options.rotation_probability = 0;
  options.scale_probability = 0;
  options.flip_probability = 0;
  options.elastic_probability = 0;
  auto out = Augment(images, labels, options, std::vector<uint64_t>{1, 2, 3, 4});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(at::equal(out->labels, labels));
  EXPECT_FALSE(at::allclose(out->images, images));
  EXPECT_TRUE(at::isfinite(out->images).all().item<bool>());
}

TEST(AugmentTest, GammaKeepsTheIntensityRange) {
  at::Tensor images = TestImages(2, 16, 16);
  AugmentOptions options = AugmentOptions::None();
  options.gamma_probability = 1;
  auto out = Augment(images, at::Tensor(), options, std::vector<uint64_t>{3, 4});
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->labels.defined());
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_NEAR(out->images[b].min().item<float>(), images[b].min().item<float>(), 1e-5);
    EXPECT_NEAR(out->images[b].max().item<float>(), images[b].max().item<float>(), 1e-5);
  }
  EXPECT_FALSE(at::allclose(out->images, images));
}

TEST(AugmentTest, BiasFieldKeepsTheMinimumAndStaysWithinItsMagnitude) {
  at::Tensor images = TestImages(3, 20, 20);
  AugmentOptions options = AugmentOptions::None();
  options.bias_field_probability = 1;
  options.bias_field_magnitude = 0.2;
  auto out = Augment(images, at::Tensor(), options, std::vector<uint64_t>{7, 8, 9});
  ASSERT_TRUE(out.ok());
  for (int64_t b = 0; b < 3; ++b) {
    const float lo = images[b].min().item<float>();
    at::Tensor ratio = (out->images[b] - lo + 1e-3f) / (images[b] - lo + 1e-3f);
    EXPECT_GE(ratio.min().item<float>(), std::exp(-0.2f) - 1e-3f);
    EXPECT_LE(ratio.max().item<float>(), std::exp(0.2f) + 1e-3f);
  }
  EXPECT_FALSE(at::allclose(out->images, images));
}

TEST(AugmentTest, RejectsBadInputsAndOptions) {
  at::Tensor images = TestImages(2, 8, 8);
  at::Tensor labels = TestLabels(2, 8, 8);
  std::vector<uint64_t> seeds{1, 2};
  AugmentOptions options;
  options.gamma_probability = 1.5;
  EXPECT_THAT(Augment(images, labels, options, seeds).status().message(),
              HasSubstr("gamma_probability = 1.5"));
  options = AugmentOptions();
  options.min_scale = 1.2;
  options.max_scale = 1.1;
  EXPECT_THAT(ValidateAugmentOptions(options).message(), HasSubstr("min_scale"));
  EXPECT_THAT(
      Augment(images, labels, AugmentOptions(), std::vector<uint64_t>{1}).status().message(),
      HasSubstr("1 seeds for a batch of 2"));
  EXPECT_FALSE(Augment(images[0], labels, AugmentOptions(), seeds).ok());
  EXPECT_FALSE(Augment(images, labels.slice(1, 0, 4), AugmentOptions(), seeds).ok());
  EXPECT_FALSE(Augment(images, labels.to(at::kFloat), AugmentOptions(), seeds).ok());
}

}  // namespace
}  // namespace fedjoint::common::data
