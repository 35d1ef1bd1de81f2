// Cross-entropy, DiceCE and per-head supervision of multi-domain batches.
#include <cmath>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/losses/cross_entropy_loss.h"
#include "common/losses/dice_ce_loss.h"
#include "common/losses/dice_loss.h"
#include "common/losses/multi_head_loss.h"

namespace fedjoint::common::losses {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Two pixels, logits (0, ln 3): softmax = (1/4, 3/4).
//   pixel 1, target 1: −ln(3/4) = 0.287682;  pixel 2, target 0: −ln(1/4) = 1.386294.
at::Tensor Logits() {
  return torch::tensor({0.0, 0.0, std::log(3.0), std::log(3.0)}, torch::kDouble)
      .reshape({1, 2, 1, 2});
}
at::Tensor Target() { return torch::tensor({1, 0}, torch::kLong).reshape({1, 1, 2}); }
const double kCe1 = -std::log(0.75);
const double kCe2 = -std::log(0.25);

TEST(CrossEntropyLossTest, HandComputed) {
  EXPECT_NEAR(functional::cross_entropy_loss(Logits(), Target()).item<double>(), (kCe1 + kCe2) / 2,
              1e-12);
  EXPECT_NEAR(functional::cross_entropy_loss(Logits(), Target(),
                                             CrossEntropyLossOptions().reduction(Reduction::kSum))
                  .item<double>(),
              kCe1 + kCe2, 1e-12);
  // torch's weighted mean: Σ w_t·ce / Σ w_t = (3·ce1 + 1·ce2) / 4.
  CrossEntropyLoss weighted(
      CrossEntropyLossOptions().weight(torch::tensor({1.0, 3.0}, torch::kDouble)));
  EXPECT_NEAR(weighted(Logits(), Target()).item<double>(), (3 * kCe1 + kCe2) / 4, 1e-12);
  // ignore_index drops pixel 2.
  EXPECT_NEAR(
      functional::cross_entropy_loss(Logits(), Target(), CrossEntropyLossOptions().ignore_index(0))
          .item<double>(),
      kCe1, 1e-12);
}

TEST(CrossEntropyLossTest, OneHotTargetEqualsIndexTarget) {
  const at::Tensor one_hot = torch::one_hot(Target(), 2).movedim(-1, 1).to(torch::kDouble);
  EXPECT_NEAR(functional::cross_entropy_loss(Logits(), one_hot).item<double>(), (kCe1 + kCe2) / 2,
              1e-12);
}

TEST(CrossEntropyLossTest, RejectsBadOptions) {
  EXPECT_THAT([] { CrossEntropyLoss(CrossEntropyLossOptions().label_smoothing(1.5)); },
              ThrowsMessage<c10::Error>(HasSubstr(
                  "CrossEntropyLossOptions: label_smoothing must lie in [0, 1], got 1.5")));
  EXPECT_THAT(
      [] {
        CrossEntropyLoss(CrossEntropyLossOptions().weight(torch::tensor({1.0, -1.0})));
      },
      ThrowsMessage<c10::Error>(HasSubstr("class weights must be >= 0")));
}

TEST(DiceCELossTest, IsWeightedSumOfParts) {
  const auto options = DiceCELossOptions()
                           .dice(DiceLossOptions().include_background(false))
                           .lambda_dice(0.7)
                           .lambda_ce(2.0);
  DiceCELoss loss(options);
  const double dice =
      functional::dice_loss(Logits(), Target(), DiceLossOptions().include_background(false))
          .item<double>();
  // Class 1: I = 3/4, ΣP = 3/2, ΣT = 1 → Dice = 1.5/2.5 = 0.6 (up to smoothing).
  EXPECT_NEAR(dice, 0.4, 1e-5);
  EXPECT_NEAR(loss(Logits(), Target()).item<double>(), 0.7 * dice + 2.0 * (kCe1 + kCe2) / 2, 1e-12);
  EXPECT_NEAR(functional::dice_ce_loss(Logits(), Target(), options).item<double>(),
              loss(Logits(), Target()).item<double>(), 1e-12);
}

TEST(DiceCELossTest, RejectsConflictingOptions) {
  EXPECT_THAT(
      [] { DiceCELoss(DiceCELossOptions().dice(DiceLossOptions().softmax(false))); },
      ThrowsMessage<c10::Error>(HasSubstr("DiceCELossOptions: dice.softmax(false) conflicts with "
                                          "cross-entropy, which takes logits")));
  EXPECT_THAT(
      [] {
        DiceCELoss(DiceCELossOptions().dice(DiceLossOptions().reduction(DiceReduction::kNone)));
      },
      ThrowsMessage<c10::Error>(HasSubstr("unreduced parts cannot be summed")));
  EXPECT_THAT(
      [] {
        DiceCELoss(DiceCELossOptions().cross_entropy(CrossEntropyLossOptions().ignore_index(3)));
      },
      ThrowsMessage<c10::Error>(HasSubstr("cross_entropy.ignore_index(3) is not supported")));
  EXPECT_THAT([] { DiceCELoss(DiceCELossOptions().lambda_dice(0).lambda_ce(0)); },
              ThrowsMessage<c10::Error>(HasSubstr("lambda_dice and lambda_ce are both 0")));
  EXPECT_THAT([] { DiceCELoss(DiceCELossOptions().dice(DiceLossOptions().smooth(-2))); },
              ThrowsMessage<c10::Error>(HasSubstr(
                  "DiceCELossOptions.dice: DiceLossOptions: smooth must be finite and >= 0")));
}

// A stand-in head loss whose value is easy to compute: the mean logit.
at::Tensor MeanLogit(const at::Tensor& logits, const at::Tensor&) { return logits.mean(); }

TEST(MultiHeadLossTest, WeightsHeadsBySamplesOrEqually) {
  // Head 0: one sample, logits all 1 (loss 1). Head 1: three samples, logits all 2 (loss 2).
  const std::vector<HeadBatch> heads = {
      {0, torch::ones({1, 2, 2, 2}), torch::zeros({1, 2, 2}, torch::kLong)},
      {1, torch::full({3, 4, 2, 2}, 2.0), torch::zeros({3, 2, 2}, torch::kLong)},
      {2, torch::zeros({0, 3, 2, 2}), torch::zeros({0, 2, 2}, torch::kLong)}};  // no sample
  EXPECT_FLOAT_EQ(functional::multi_head_loss(heads, MeanLogit).item<float>(),
                  (1 * 1.0f + 3 * 2.0f) / 4);
  EXPECT_FLOAT_EQ(
      functional::multi_head_loss(heads, MeanLogit, HeadWeighting::kEqual).item<float>(), 1.5f);
  EXPECT_THAT([&] { functional::multi_head_loss({heads[2]}, MeanLogit); },
              ThrowsMessage<c10::Error>(HasSubstr("the batch has no sample for any head")));
}

TEST(MultiHeadLossTest, OnlyEachSamplesOwnHeadReceivesGradient) {
  torch::manual_seed(5);
  // Every head applied to all 4 samples; heads have 2 and 3 classes (different label sets).
  const at::Tensor head0 = torch::randn({4, 2, 3, 3}, torch::requires_grad());
  const at::Tensor head1 = torch::randn({4, 3, 3, 3}, torch::requires_grad());
  const at::Tensor head_of_sample = torch::tensor({1, 0, 1, 1}, torch::kLong);
  // Labels valid for each sample's own head only (2 does not exist in head 0).
  const at::Tensor target =
      torch::stack({torch::full({3, 3}, 2, torch::kLong), torch::ones({3, 3}, torch::kLong),
                    torch::zeros({3, 3}, torch::kLong), torch::full({3, 3}, 2, torch::kLong)});
  const std::vector<HeadBatch> selected =
      functional::select_own_head({head0, head1}, head_of_sample, target);
  ASSERT_EQ(selected.size(), 2u);
  EXPECT_EQ(selected[0].head, 0);
  EXPECT_EQ(selected[0].logits.size(0), 1);
  EXPECT_TRUE(torch::equal(selected[0].target, target.slice(0, 1, 2)));
  EXPECT_EQ(selected[1].head, 1);
  EXPECT_EQ(selected[1].logits.size(0), 3);
  EXPECT_TRUE(torch::equal(selected[1].target, target.index_select(0, torch::tensor({0, 2, 3}))));

  MultiHeadLoss loss;
  const at::Tensor value = loss(selected);
  // Per-sample weighting: (1·L_0 + 3·L_1) / 4 with each head's DiceCE.
  DiceCELoss dice_ce;
  const double expected = (1 * dice_ce(selected[0].logits, selected[0].target).item<double>() +
                           3 * dice_ce(selected[1].logits, selected[1].target).item<double>()) /
                          4;
  EXPECT_NEAR(value.item<double>(), expected, 1e-6);

  value.backward();
  auto row_grad = [](const at::Tensor& t, int64_t row) {
    return t.grad()[row].abs().sum().item<double>();
  };
  EXPECT_GT(row_grad(head0, 1), 0.0);
  EXPECT_GT(row_grad(head1, 0), 0.0);
  EXPECT_GT(row_grad(head1, 2), 0.0);
  EXPECT_GT(row_grad(head1, 3), 0.0);
  for (int64_t row : {0, 2, 3}) EXPECT_EQ(row_grad(head0, row), 0.0) << "row " << row;
  EXPECT_EQ(row_grad(head1, 1), 0.0);
}

// The form common/model's UNet returns: per joint, logits of its own samples and their batch
// indices (undefined for a joint absent from the batch).
TEST(MultiHeadLossTest, GathersTargetsBySampleIndices) {
  const at::Tensor target = torch::arange(4, torch::kLong).reshape({4, 1, 1});
  const std::vector<at::Tensor> logits = {torch::zeros({3, 2, 1, 1}), at::Tensor(),
                                          torch::zeros({1, 5, 1, 1})};
  const std::vector<at::Tensor> indices = {torch::tensor({0, 2, 3}),
                                           torch::zeros({0}, torch::kLong), torch::tensor({1})};
  const std::vector<HeadBatch> heads = functional::gather_head_batches(logits, indices, target);
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_EQ(heads[0].head, 0);
  EXPECT_TRUE(torch::equal(heads[0].target.flatten(), torch::tensor({0, 2, 3})));
  EXPECT_EQ(heads[1].head, 2);
  EXPECT_TRUE(torch::equal(heads[1].target.flatten(), torch::tensor({1})));
  EXPECT_THAT(
      [&] {
        functional::gather_head_batches(logits, {torch::tensor({0}), indices[1], indices[2]},
                                        target);
      },
      ThrowsMessage<c10::Error>(
          HasSubstr("head 0 has 3 logit rows but its sample_indices are [1]")));
}

TEST(MultiHeadLossTest, RejectsHeadIndexOutOfRange) {
  EXPECT_THAT(
      [] {
        functional::select_own_head({torch::zeros({2, 2, 1, 1})}, torch::tensor({0, 1}),
                                    torch::zeros({2, 1, 1}, torch::kLong));
      },
      ThrowsMessage<c10::Error>(HasSubstr("head indices must lie in [0, 1), got [0, 1]")));
}

}  // namespace
}  // namespace fedjoint::common::losses
