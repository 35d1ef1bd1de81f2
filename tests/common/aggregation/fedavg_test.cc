#include "common/aggregation/fedavg.h"

#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::aggregation {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A tiny model: one global tensor and one head per joint.
struct TinyModel {
  std::vector<float> body = {0, 0, 0, 0};
  std::vector<float> knee_head = {0, 0};
  std::vector<float> ankle_head = {5, 5};

  std::vector<SharedTensor> Shared() const {
    return {
        {{"encoder.w", {2, 2}, body}, {Scope::kGlobal, ""}},
        {{"heads.knee.w", {2}, knee_head}, {Scope::kDomain, "knee"}},
        {{"heads.ankle.w", {2}, ankle_head}, {Scope::kDomain, "ankle"}},
    };
  }
};

TEST(ScopedFedAvgTest, GlobalOverAllSitesDomainOverItsSites) {
  TinyModel model;
  ScopedFedAvg avg(model.Shared(), {});
  std::vector<std::string> knee = {"knee"};
  // Two knee sites (weights 1 and 3) and one ankle site (weight 4).
  std::vector<float> a_body = {1, 2, 3, 4}, a_head = {10, 20};
  std::vector<float> b_body = {5, 6, 7, 8}, b_head = {30, 40};
  std::vector<float> c_body = {9, 9, 9, 9}, c_head = {7, 8};
  std::vector<TensorView> a = {{"encoder.w", {2, 2}, a_body}, {"heads.knee.w", {2}, a_head}};
  std::vector<TensorView> b = {{"encoder.w", {2, 2}, b_body}, {"heads.knee.w", {2}, b_head}};
  std::vector<TensorView> c = {{"heads.ankle.w", {2}, c_head}, {"encoder.w", {2, 2}, c_body}};
  ASSERT_TRUE(avg.Add("site-a", knee, a, 1).ok());
  ASSERT_TRUE(avg.Add("site-b", knee, b, 3).ok());
  std::vector<std::string> ankle = {"ankle"};
  ASSERT_TRUE(avg.Add("site-c", ankle, c, 4).ok());
  EXPECT_EQ(avg.num_updates(), 3);

  auto out = avg.Finalize();
  // body: (1*a + 3*b + 4*c) / 8
  EXPECT_THAT(out[0], ElementsAre((1 + 15 + 36) / 8.f, (2 + 18 + 36) / 8.f, (3 + 21 + 36) / 8.f,
                                  (4 + 24 + 36) / 8.f));
  // knee head: (1*a + 3*b) / 4 — the ankle site does not take part.
  EXPECT_THAT(out[1], ElementsAre((10 + 90) / 4.f, (20 + 120) / 4.f));
  // ankle head: only site-c.
  EXPECT_THAT(out[2], ElementsAre(7.f, 8.f));
}

TEST(ScopedFedAvgTest, TensorWithoutContributionsKeepsStartValue) {
  TinyModel model;
  ScopedFedAvg avg(model.Shared(), {});
  std::vector<float> body = {1, 1, 1, 1}, head = {2, 2};
  std::vector<TensorView> u = {{"encoder.w", {2, 2}, body}, {"heads.knee.w", {2}, head}};
  std::vector<std::string> knee = {"knee"};
  ASSERT_TRUE(avg.Add("site-a", knee, u, 10).ok());
  EXPECT_THAT(avg.Finalize()[2], ElementsAre(5.f, 5.f));
}

class RefusalTest : public ::testing::Test {
 protected:
  std::string Refuse(std::vector<TensorView> update, std::vector<std::string> joints = {"knee"},
                     double weight = 1, UpdateLimits limits = {}) {
    ScopedFedAvg avg(model_.Shared(), limits);
    absl::Status s = avg.Add("site-x", joints, update, weight);
    EXPECT_FALSE(s.ok());
    // Refused means nothing was added.
    EXPECT_EQ(avg.num_updates(), 0);
    EXPECT_THAT(avg.Finalize()[0], ElementsAre(0.f, 0.f, 0.f, 0.f));
    return std::string(s.message());
  }
  TinyModel model_;
  std::vector<float> body_ = {1, 2, 3, 4};
  std::vector<float> head_ = {1, 2};
};

TEST_F(RefusalTest, SiteScopedOrUnknownTensor) {
  std::vector<float> stats = {1, 2};
  EXPECT_EQ(Refuse({{"encoder.w", {2, 2}, body_},
                    {"heads.knee.w", {2}, head_},
                    {"encoder.bn1.knee.running_mean", {2}, stats}}),
            "update from site 'site-x': tensor 'encoder.bn1.knee.running_mean' is not a shared "
            "parameter of this round (unknown, or site-scoped: site-scoped tensors must never "
            "leave the site)");
}

TEST_F(RefusalTest, WrongShape) {
  EXPECT_EQ(Refuse({{"encoder.w", {4}, body_}, {"heads.knee.w", {2}, head_}}),
            "update from site 'site-x': tensor 'encoder.w' has shape [4], expected [2, 2]");
}

TEST_F(RefusalTest, NaNAndInfinity) {
  std::vector<float> bad = {1, std::numeric_limits<float>::quiet_NaN(), 3, 4};
  EXPECT_EQ(Refuse({{"encoder.w", {2, 2}, bad}, {"heads.knee.w", {2}, head_}}),
            "update from site 'site-x': tensor 'encoder.w' contains NaN or infinite values");
  std::vector<float> inf = {std::numeric_limits<float>::infinity(), 0};
  EXPECT_THAT(Refuse({{"encoder.w", {2, 2}, body_}, {"heads.knee.w", {2}, inf}}),
              HasSubstr("'heads.knee.w' contains NaN or infinite values"));
}

// Large tensors take the threaded, vectorized check: one bad value anywhere in it (last element,
// a negative infinity, a NaN with payload) is found, and the running sum is untouched.
TEST(ScopedFedAvgTest, NonFiniteValueAnywhereInALargeTensorIsRefused) {
  constexpr size_t kSize = (1 << 18) + 3;
  std::vector<float> start(kSize, 0.f);
  ScopedFedAvg avg({{{"encoder.w", {int64_t(kSize)}, start}, {Scope::kGlobal, ""}}}, {});
  std::vector<float> good(kSize, 2.f);
  std::vector<std::string> joints;
  for (size_t at : {size_t{0}, kSize / 2 + 1, kSize - 1}) {
    for (float bad : {-std::numeric_limits<float>::infinity(), std::nanf("7")}) {
      std::vector<float> update(kSize, 1.f);
      update[at] = bad;
      auto status = avg.Add("site-x", joints,
                            std::vector<TensorView>{{"encoder.w", {int64_t(kSize)}, update}}, 1);
      EXPECT_THAT(std::string(status.message()), HasSubstr("contains NaN or infinite values"))
          << "at " << at;
    }
  }
  ASSERT_TRUE(
      avg.Add("site-y", joints, std::vector<TensorView>{{"encoder.w", {int64_t(kSize)}, good}}, 1)
          .ok());
  auto result = avg.Finalize();
  EXPECT_EQ(avg.num_updates(), 1);
  EXPECT_EQ(result[0].front(), 2.f);
  EXPECT_EQ(result[0].back(), 2.f);
}

TEST_F(RefusalTest, MissingDuplicateAndForeignDomain) {
  EXPECT_EQ(Refuse({{"encoder.w", {2, 2}, body_}}),
            "update from site 'site-x': tensor 'heads.knee.w' (scope domain:knee) is missing");
  EXPECT_THAT(Refuse({{"encoder.w", {2, 2}, body_},
                      {"encoder.w", {2, 2}, body_},
                      {"heads.knee.w", {2}, head_}}),
              HasSubstr("tensor 'encoder.w' appears twice"));
  EXPECT_EQ(Refuse({{"encoder.w", {2, 2}, body_},
                    {"heads.knee.w", {2}, head_},
                    {"heads.ankle.w", {2}, head_}}),
            "update from site 'site-x': tensor 'heads.ankle.w' has scope domain:ankle but the site "
            "does not hold joint 'ankle'");
}

TEST_F(RefusalTest, NormBoundAndWeight) {
  // Distance from the start model: body sqrt(1+4+9+16)=sqrt(30), head (1,2) vs (0,0): sqrt(5).
  EXPECT_THAT(Refuse({{"encoder.w", {2, 2}, body_}, {"heads.knee.w", {2}, head_}}, {"knee"}, 1,
                     UpdateLimits{5.0}),
              HasSubstr("update norm 5.91608 exceeds the bound of 5"));
  EXPECT_THAT(Refuse({{"encoder.w", {2, 2}, body_}, {"heads.knee.w", {2}, head_}}, {"knee"}, 0),
              HasSubstr("weight must be positive, got 0"));
}

TEST(AccumulateScaledTest, LargeArraysMatchSerialSum) {
  const size_t n = (1 << 18) + 7;  // above the parallel threshold, odd tail
  std::vector<float> acc(n, 1.0f), x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 97);
  AccumulateScaled(acc, x, 0.5f);
  for (size_t i = 0; i < n; i += 4099) ASSERT_FLOAT_EQ(acc[i], 1.0f + 0.5f * (i % 97));
  ASSERT_FLOAT_EQ(acc[n - 1], 1.0f + 0.5f * ((n - 1) % 97));
}

}  // namespace
}  // namespace fedjoint::common::aggregation
