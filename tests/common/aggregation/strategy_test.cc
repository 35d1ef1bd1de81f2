#include "common/aggregation/strategy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::aggregation {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// One global tensor of two values starting at {1, 1}.
class RoundAggregationTest : public ::testing::Test {
 protected:
  std::vector<SharedTensor> Start() { return {{{"encoder.w", {2}, start_}, {Scope::kGlobal, ""}}}; }
  static std::vector<TensorView> Update(const std::vector<float>& v) {
    return {{"encoder.w", {2}, v}};
  }
  std::vector<float> start_ = {1, 1};
  std::vector<std::string> knee_ = {"knee"};
};

TEST_F(RoundAggregationTest, SampleAndUniformWeighting) {
  const std::vector<float> a = {3, 3}, b = {7, 7};
  for (auto [weighting, expected] :
       {std::pair{Weighting::kSamples, 6.0f}, std::pair{Weighting::kUniform, 5.0f}}) {
    StrategyOptions options;
    options.weighting = weighting;
    RoundAggregation round(Start(), options);
    ASSERT_TRUE(round.Add("a", knee_, Update(a), 1, {}).ok());
    ASSERT_TRUE(round.Add("b", knee_, Update(b), 3, {}).ok());
    auto result = round.Finalize();
    ASSERT_TRUE(result.ok());
    EXPECT_THAT(result->tensors[0], ElementsAre(expected, expected));
  }
  EXPECT_EQ(UpdateWeight(Weighting::kSamples, 40), 40);
  EXPECT_EQ(UpdateWeight(Weighting::kUniform, 40), 1);
}

TEST_F(RoundAggregationTest, ServerStepMovesAlongTheAverageUpdate) {
  const std::vector<float> a = {3, 5};
  StrategyOptions options;
  options.server_learning_rate = 0.5;
  RoundAggregation round(Start(), options);
  ASSERT_TRUE(round.Add("a", knee_, Update(a), 1, {}).ok());
  auto result = round.Finalize();
  ASSERT_TRUE(result.ok());
  EXPECT_THAT(result->tensors[0], ElementsAre(2.0f, 3.0f));  // 1 + 0.5 * (avg - 1)
}

TEST_F(RoundAggregationTest, ARefusedPrototypeRefusesTheWholeUpdate) {
  const std::vector<float> a = {3, 3}, b = {7, 7};
  RoundAggregation round(Start(), {});
  std::vector<Prototype> other_joint = {{"ankle", 0, {1, 0}, 4}};
  auto refused = round.Add("a", knee_, Update(a), 1, other_joint);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(round.num_updates(), 0);
  std::vector<Prototype> knee = {{"knee", 0, {0, 2}, 4}};
  ASSERT_TRUE(round.Add("b", knee_, Update(b), 1, knee).ok());
  EXPECT_THAT(round.Add("c", knee_, Update(b), -1, {}).message(), HasSubstr("negative"));
  auto result = round.Finalize();
  ASSERT_TRUE(result.ok());
  EXPECT_THAT(result->tensors[0], ElementsAre(7.0f, 7.0f));
  ASSERT_EQ(result->prototypes.size(), 1u);
  EXPECT_THAT(result->prototypes[0].values, ElementsAre(0.0f, 1.0f));  // unit length
}

TEST(StrategyOptionsTest, PhaseBoundWinsOverTheJobs) {
  v1::PhaseConfig phase;
  phase.set_name("seg");
  phase.set_weighting("uniform");
  phase.set_server_learning_rate(0.8);
  auto options = StrategyOptionsFor(phase, {.max_update_norm = 3});
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->weighting, Weighting::kUniform);
  EXPECT_EQ(options->server_learning_rate, 0.8);
  EXPECT_EQ(options->limits.max_update_norm, 3);
  phase.set_max_update_norm(9);
  EXPECT_EQ(StrategyOptionsFor(phase, {.max_update_norm = 3})->limits.max_update_norm, 9);
  phase.set_weighting("votes");
  EXPECT_THAT(StrategyOptionsFor(phase, {}).status().message(),
              HasSubstr("phase 'seg': unknown weighting 'votes'"));
}

}  // namespace
}  // namespace fedjoint::common::aggregation
