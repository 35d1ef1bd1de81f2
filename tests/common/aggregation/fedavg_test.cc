#include "common/aggregation/fedavg.h"

#include <cmath>
#include <limits>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

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

TEST(ServerStepTest, ExtrapolatesTheAverageUpdateAndOneIsFedAvg) {
  const std::vector<float> start = {1, 2, 3};
  std::vector<float> averaged = {2, 2, 1};
  ASSERT_TRUE(ApplyServerStep(start, averaged, 1.0).ok());
  EXPECT_THAT(averaged, ::testing::ElementsAre(2, 2, 1));
  ASSERT_TRUE(ApplyServerStep(start, averaged, 1.5).ok());
  EXPECT_THAT(averaged, ::testing::ElementsAre(2.5f, 2, 0));
  std::vector<float> big(200000, 3.f), origin(200000, 1.f);  // the multithreaded path
  ASSERT_TRUE(ApplyServerStep(origin, big, 0.5).ok());
  for (float v : big) ASSERT_EQ(v, 2.f);
  std::vector<float> shorter = {1, 2};
  EXPECT_EQ(ApplyServerStep(shorter, averaged, 2.0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(averaged, ::testing::ElementsAre(2.5f, 2, 0));
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

TEST(FoldIntoTest, LargeArraysMatchSerialSum) {
  const size_t n = (1 << 18) + 7;  // odd tail
  std::vector<float> acc(n, 1.0f), x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 97);
  const std::span<const float> xs[] = {x};
  const float weights[] = {0.5f};
  FoldInto(acc, /*init=*/false, xs, weights);
  for (size_t i = 0; i < n; i += 4099) ASSERT_FLOAT_EQ(acc[i], 1.0f + 0.5f * (i % 97));
  ASSERT_FLOAT_EQ(acc[n - 1], 1.0f + 0.5f * ((n - 1) % 97));
}

// The fused, batched fold gives exactly (bit for bit) what adding the updates one at a time in
// arrival order gives, whatever the batch size, with some tensors missing from some updates.
TEST(ScopedFedAvgTest, BatchedFoldEqualsNaiveWeightedMean) {
  constexpr int kSites = 11;
  const std::vector<int64_t> sizes = {70001, 5, (1 << 18) + 3};
  std::vector<std::vector<float>> start(sizes.size());
  for (size_t t = 0; t < sizes.size(); ++t) start[t].assign(size_t(sizes[t]), 0.5f);
  std::vector<SharedTensor> shared = {
      {{"a", {sizes[0]}, start[0]}, {Scope::kGlobal, ""}},
      {{"heads.knee", {sizes[1]}, start[1]}, {Scope::kDomain, "knee"}},
      {{"c", {sizes[2]}, start[2]}, {Scope::kGlobal, ""}},
  };
  // Site s holds knee when s is even; values vary by site, tensor and element.
  std::vector<std::vector<std::vector<float>>> values(kSites);
  std::vector<double> weights;
  uint32_t state = 7;
  for (int s = 0; s < kSites; ++s) {
    for (size_t t = 0; t < sizes.size(); ++t) {
      values[size_t(s)].emplace_back(size_t(sizes[t]));
      for (float& v : values[size_t(s)][t]) {
        state = state * 1664525u + 1013904223u;
        v = float(int32_t(state >> 8)) * 1e-6f;
      }
    }
    weights.push_back(1 + s * 7 % 5);
  }
  auto update_of = [&](int s) {
    std::vector<TensorView> u = {{"a", {sizes[0]}, values[size_t(s)][0]},
                                 {"c", {sizes[2]}, values[size_t(s)][2]}};
    if (s % 2 == 0) u.push_back({"heads.knee", {sizes[1]}, values[size_t(s)][1]});
    return u;
  };
  auto joints_of = [](int s) {
    return s % 2 == 0 ? std::vector<std::string>{"knee"} : std::vector<std::string>{};
  };
  // The reference: float running sums in arrival order, divided at the end, as before batching.
  std::vector<std::vector<float>> expected(sizes.size());
  for (size_t t = 0; t < sizes.size(); ++t) {
    std::vector<float> sum(size_t(sizes[t]), 0.0f);
    double total = 0;
    for (int s = 0; s < kSites; ++s) {
      if (t == 1 && s % 2 != 0) continue;
      for (size_t i = 0; i < sum.size(); ++i) {
        sum[i] += static_cast<float>(weights[size_t(s)]) * values[size_t(s)][t][i];
      }
      total += weights[size_t(s)];
    }
    const float inv = static_cast<float>(1.0 / total);
    for (float& v : sum) v *= inv;
    expected[t] = std::move(sum);
  }
  for (int batch : {1, 3, 8, 100}) {
    for (ValueCheck check : {ValueCheck::kCheck, ValueCheck::kAlreadyChecked}) {
      FoldOptions fold;
      fold.batch = batch;
      ScopedFedAvg avg(shared, {}, fold);
      for (int s = 0; s < kSites; ++s) {
        ASSERT_TRUE(
            avg.Add(absl::StrCat("site-", s), joints_of(s), update_of(s), weights[size_t(s)], check)
                .ok());
        EXPECT_EQ(avg.pending(), (s + 1) % batch) << "batch " << batch;
      }
      auto out = avg.Finalize();
      ASSERT_EQ(out.size(), sizes.size());
      for (size_t t = 0; t < sizes.size(); ++t) {
        ASSERT_EQ(out[t].size(), expected[t].size());
        for (size_t i = 0; i < out[t].size(); ++i) {
          ASSERT_EQ(out[t][i], expected[t][i])
              << "batch " << batch << " tensor " << t << " at " << i;
        }
      }
    }
  }
}

// A refused update leaves no trace even with others queued before and after it; the message names
// the site and the tensor.
TEST(ScopedFedAvgTest, RefusalAmongQueuedUpdatesLeavesNoTrace) {
  std::vector<float> start(100000, 0.f);
  ScopedFedAvg avg({{{"w", {100000}, start}, {Scope::kGlobal, ""}}}, {});
  std::vector<float> one(100000, 1.f), three(100000, 3.f), bad(100000, 2.f);
  bad[99999] = std::numeric_limits<float>::infinity();
  std::vector<std::string> joints;
  ASSERT_TRUE(avg.Add("site-a", joints, std::vector<TensorView>{{"w", {100000}, one}}, 1).ok());
  auto refused = avg.Add("site-b", joints, std::vector<TensorView>{{"w", {100000}, bad}}, 1);
  EXPECT_EQ(refused.message(),
            "update from site 'site-b': tensor 'w' contains NaN or infinite values");
  ASSERT_TRUE(avg.Add("site-c", joints, std::vector<TensorView>{{"w", {100000}, three}}, 1).ok());
  EXPECT_EQ(avg.num_updates(), 2);
  auto out = avg.Finalize();
  EXPECT_EQ(out[0].front(), 2.f);
  EXPECT_EQ(out[0].back(), 2.f);
}

// Values the caller checked are not read again; with a norm bound they are (and a non-finite one
// is refused there too).
TEST(ScopedFedAvgTest, AlreadyCheckedValuesAndTheNormBound) {
  std::vector<float> start = {0, 0, 0, 0};
  std::vector<float> nan = {1, std::nanf(""), 1, 1};
  std::vector<std::string> joints;
  std::vector<TensorView> update = {{"w", {4}, nan}};
  ScopedFedAvg bounded({{{"w", {4}, start}, {Scope::kGlobal, ""}}}, UpdateLimits{100.0});
  EXPECT_THAT(
      std::string(bounded.Add("site-x", joints, update, 1, ValueCheck::kAlreadyChecked).message()),
      HasSubstr("tensor 'w' contains NaN or infinite values"));
  std::vector<float> far = {100, 100, 100, 100};
  EXPECT_THAT(std::string(bounded
                              .Add("site-x", joints, std::vector<TensorView>{{"w", {4}, far}}, 1,
                                   ValueCheck::kAlreadyChecked)
                              .message()),
              HasSubstr("update norm 200 exceeds the bound of 100"));
  EXPECT_EQ(bounded.num_updates(), 0);
}

// The fold hands back every added value range, each once, so a caller can drop mapped pages.
TEST(ScopedFedAvgTest, ReleaseCoversEveryFoldedValueOnce) {
  const int64_t n = (1 << 20) + 17;  // more than one fold window
  std::vector<float> start(size_t(n), 0.f), small_start(3, 0.f);
  std::vector<std::vector<float>> updates = {std::vector<float>(size_t(n), 1.f),
                                             std::vector<float>(size_t(n), 2.f)};
  std::vector<float> small = {1, 2, 3};
  std::map<const float*, int64_t> released;  // begin -> count
  FoldOptions fold;
  fold.batch = 2;
  fold.release = [&](std::span<const float> v) { released[v.data()] += int64_t(v.size()); };
  ScopedFedAvg avg({{{"big", {n}, start}, {Scope::kGlobal, ""}},
                    {{"small", {3}, small_start}, {Scope::kGlobal, ""}}},
                   {}, fold);
  for (const auto& u : updates) {
    ASSERT_TRUE(
        avg.Add("site", {}, std::vector<TensorView>{{"big", {n}, u}, {"small", {3}, small}}, 1)
            .ok());
  }
  EXPECT_EQ(avg.pending(), 0);
  int64_t total = 0;
  for (const auto& [begin, count] : released) total += count;
  EXPECT_EQ(total, 2 * (n + 3));
  for (const auto& u : updates) {
    // The ranges of one update tile it.
    int64_t covered = 0;
    for (const auto& [begin, count] : released) {
      if (begin >= u.data() && begin < u.data() + n) covered += count;
    }
    EXPECT_EQ(covered, n);
  }
}

// Accumulators handed back by Finalize are reused by the next aggregator (no fresh memory), and
// their old content does not leak into the new sum.
TEST(ScopedFedAvgTest, RecycledAccumulatorsAreReused) {
  std::vector<float> start(1000, 0.f), x(1000, 4.f), y(1000, 8.f);
  std::vector<std::string> joints;
  ScopedFedAvg first({{{"w", {1000}, start}, {Scope::kGlobal, ""}}}, {});
  ASSERT_TRUE(first.Add("a", joints, std::vector<TensorView>{{"w", {1000}, x}}, 1).ok());
  auto out = first.Finalize();
  const float* storage = out[0].data();
  ScopedFedAvg second({{{"w", {1000}, start}, {Scope::kGlobal, ""}}}, {}, {}, std::move(out));
  ASSERT_TRUE(second.Add("b", joints, std::vector<TensorView>{{"w", {1000}, y}}, 1).ok());
  auto again = second.Finalize();
  EXPECT_EQ(again[0].data(), storage);
  EXPECT_EQ(again[0][0], 8.f);
  EXPECT_EQ(again[0][999], 8.f);
}

TEST(FoldIntoTest, EqualsAddingOneByOne) {
  for (size_t k : {size_t{1}, size_t{4}, size_t{9}, size_t{17}}) {
    const size_t n = 1031;
    std::vector<std::vector<float>> xs(k, std::vector<float>(n));
    std::vector<float> ws;
    for (size_t j = 0; j < k; ++j) {
      ws.push_back(0.25f + float(j));
      for (size_t i = 0; i < n; ++i) xs[j][i] = float((i * 31 + j * 7) % 101) * 0.37f - 11.f;
    }
    std::vector<std::span<const float>> spans(xs.begin(), xs.end());
    for (bool init : {true, false}) {
      std::vector<float> acc(n, 3.f), expected(n, init ? 0.f : 3.f);
      for (size_t j = 0; j < k; ++j)
        for (size_t i = 0; i < n; ++i) expected[i] += ws[j] * xs[j][i];
      FoldInto(acc, init, spans, ws);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(acc[i], expected[i]) << k << " " << init << " " << i;
    }
  }
}

TEST(CountNonFiniteTest, CountsNaNAndInfinities) {
  std::vector<float> v(1000, 1.f);
  EXPECT_EQ(CountNonFinite(v), 0);
  v[3] = std::numeric_limits<float>::infinity();
  v[500] = -std::numeric_limits<float>::infinity();
  v[999] = std::nanf("1");
  v[7] = std::numeric_limits<float>::max();  // finite
  EXPECT_EQ(CountNonFinite(v), 3);
}

}  // namespace
}  // namespace fedjoint::common::aggregation
