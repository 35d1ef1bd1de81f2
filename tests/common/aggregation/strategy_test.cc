#include "common/aggregation/strategy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::aggregation {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
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
  EXPECT_EQ(UpdateWeight(Weighting::kSqrtSamples, 49), 7);
}

TEST_F(RoundAggregationTest, SquareRootWeightingCountsFourTimesTheDataTwice) {
  StrategyOptions options;
  options.weighting = Weighting::kSqrtSamples;
  const std::vector<float> a = {3, 3}, b = {6, 9};
  RoundAggregation round(Start(), options);
  ASSERT_TRUE(round.Add("a", knee_, Update(a), 1, {}).ok());
  ASSERT_TRUE(round.Add("b", knee_, Update(b), 4, {}).ok());
  auto result = round.Finalize();
  ASSERT_TRUE(result.ok());
  // Weights 1 and 2: (3 + 2 * 6) / 3 and (3 + 2 * 9) / 3.
  EXPECT_THAT(result->tensors[0], ElementsAre(FloatNear(5.0f, 1e-5), FloatNear(7.0f, 1e-5)));
  EXPECT_EQ(*ParseWeighting("sqrt"), Weighting::kSqrtSamples);
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

TEST(ServerOptimizerTest, MomentumCarriesTheVelocityAcrossRounds) {
  StrategyOptions options;
  options.server_optimizer = ServerOptimizer::kMomentum;
  options.server_beta1 = 0.5;
  ServerState state;
  const std::vector<float> start1 = {1}, start2 = {3};
  std::vector<std::vector<float>> average = {{3}};  // d = 2: m = 2, x = 1 + 2
  std::vector<std::span<const float>> s1 = {start1}, s2 = {start2};
  ASSERT_TRUE(ApplyServerOptimizer(s1, average, options, state).ok());
  EXPECT_THAT(average[0], ElementsAre(3.0f));
  EXPECT_THAT(state.first[0], ElementsAre(2.0f));
  EXPECT_TRUE(state.second.empty());
  average = {{4}};  // d = 1: m = 0.5 * 2 + 1 = 2, x = 3 + 2
  ASSERT_TRUE(ApplyServerOptimizer(s2, average, options, state).ok());
  EXPECT_THAT(average[0], ElementsAre(5.0f));
}

TEST(ServerOptimizerTest, AdamByHandAndAStateThatDoesNotFitStartsOver) {
  StrategyOptions options;
  options.server_optimizer = ServerOptimizer::kAdam;
  options.server_learning_rate = 0.1;
  options.server_beta1 = 0.9;
  options.server_beta2 = 0.99;
  options.server_epsilon = 1e-3;
  const std::vector<float> start = {1, 1};
  std::vector<std::span<const float>> s = {start};
  std::vector<std::vector<float>> average = {{3, 1}};
  ServerState state{{{7, 7, 7}}, {{7}}};  // another model's sizes: ignored
  ASSERT_TRUE(ApplyServerOptimizer(s, average, options, state).ok());
  // d = 2: m = 0.2, v = 0.04, x = 1 + 0.1 * 0.2 / (0.2 + 0.001); d = 0 leaves the value.
  EXPECT_THAT(average[0], ElementsAre(FloatNear(1.0f + 0.1f * 0.2f / 0.201f, 1e-6), 1.0f));
  EXPECT_THAT(state.first[0], ElementsAre(FloatNear(0.2f, 1e-7), 0.0f));
  EXPECT_THAT(state.second[0], ElementsAre(FloatNear(0.04f, 1e-7), 0.0f));

  std::vector<std::vector<float>> huge = {{3e38f, 1}};
  options.server_optimizer = ServerOptimizer::kMomentum;
  options.server_learning_rate = 10;
  ServerState fresh;
  EXPECT_THAT(
      ApplyServerOptimizer(s, huge, options, fresh, std::vector<std::string>{"enc.w"}).message(),
      HasSubstr("'enc.w': the server step gave a non-finite value"));
}

TEST_F(RoundAggregationTest, TheServerStateTravelsFromRoundToRound) {
  StrategyOptions options;
  options.server_optimizer = ServerOptimizer::kMomentum;
  options.server_beta1 = 0.5;
  const std::vector<float> a = {3, 5};
  RoundAggregation first(Start(), options);
  ASSERT_TRUE(first.Add("a", knee_, Update(a), 1, {}).ok());
  auto r1 = first.Finalize();
  ASSERT_TRUE(r1.ok());
  EXPECT_THAT(r1->tensors[0], ElementsAre(3.0f, 5.0f));  // m = d: plain FedAvg in round 1
  ASSERT_EQ(r1->state.first.size(), 1u);
  EXPECT_THAT(r1->state.first[0], ElementsAre(2.0f, 4.0f));
  RoundAggregation second(Start(), options, {}, std::move(r1->state));
  ASSERT_TRUE(second.Add("a", knee_, Update(a), 1, {}).ok());
  auto r2 = second.Finalize();
  ASSERT_TRUE(r2.ok());
  // From the same start again: m = 0.5 * (2, 4) + (2, 4) = (3, 6).
  EXPECT_THAT(r2->tensors[0], ElementsAre(4.0f, 7.0f));
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
  phase.set_weighting("sqrt");
  phase.set_server_optimizer("adam");
  phase.set_server_beta2(0.5);
  EXPECT_EQ(StrategyOptionsFor(phase, {})->server_optimizer, ServerOptimizer::kAdam);
  EXPECT_EQ(StrategyOptionsFor(phase, {})->server_beta2, 0.5);
  EXPECT_EQ(StrategyOptionsFor(phase, {})->server_beta1, 0.9);  // unset: the default
  phase.set_server_optimizer("lamb");
  EXPECT_THAT(StrategyOptionsFor(phase, {}).status().message(),
              HasSubstr("unknown server optimizer 'lamb'"));
}

}  // namespace
}  // namespace fedjoint::common::aggregation
