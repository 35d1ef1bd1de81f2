#include "common/losses/dice_loss.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/losses/anatomy_loss.h"

namespace fedjoint::common::losses {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// One 1x4 image, two classes. Probability of class 1 per pixel: 0.9 0.8 0.1 0.2 (class 0 is the
// complement: 0.1 0.2 0.9 0.8). Target: 1 0 0 0.
//   class 1: I = 0.9, ΣP = 2.0, ΣT = 1 → Dice = 1.8/3 = 0.6  → loss 0.4
//   class 0: I = 0.2 + 0.9 + 0.8 = 1.9, ΣP = 2.0, ΣT = 3 → Dice = 3.8/5 = 0.76 → loss 0.24
at::Tensor Probabilities() {
  const at::Tensor p1 = torch::tensor({0.9, 0.8, 0.1, 0.2}, torch::kDouble).reshape({1, 1, 1, 4});
  return torch::cat({1 - p1, p1}, 1);  // [1, 2, 1, 4]
}
at::Tensor Target() { return torch::tensor({1, 0, 0, 0}, torch::kLong).reshape({1, 1, 4}); }

// Smoothing 1e-5 moves these hand values by < 1e-5.
constexpr double kTol = 2e-5;

TEST(DiceLossTest, HandComputedTwoClasses) {
  const auto options = DiceLossOptions().softmax(false);
  EXPECT_NEAR(functional::dice_loss(Probabilities(), Target(), options).item<double>(),
              (0.4 + 0.24) / 2, kTol);
  EXPECT_NEAR(functional::dice_loss(Probabilities(), Target(),
                                    DiceLossOptions(options).include_background(false))
                  .item<double>(),
              0.4, kTol);
  const at::Tensor per_class = functional::dice_loss(
      Probabilities(), Target(), DiceLossOptions(options).reduction(DiceReduction::kNone));
  ASSERT_EQ(per_class.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_NEAR(per_class[0][0].item<double>(), 0.24, kTol);
  EXPECT_NEAR(per_class[0][1].item<double>(), 0.4, kTol);
}

TEST(DiceLossTest, SoftmaxOfLogitsMatchesProbabilities) {
  // Logits (0, log(p/(1−p))) have softmax (1−p, p).
  const at::Tensor p1 = Probabilities().select(1, 1).unsqueeze(1);
  const at::Tensor logits = torch::cat({torch::zeros_like(p1), (p1 / (1 - p1)).log()}, 1);
  EXPECT_NEAR(functional::dice_loss(logits, Target()).item<double>(), 0.32, kTol);
}

TEST(DiceLossTest, OneHotTargetEqualsIndexTarget) {
  const at::Tensor one_hot = torch::one_hot(Target(), 2).movedim(-1, 1).to(torch::kDouble);
  const auto options = DiceLossOptions().softmax(false);
  EXPECT_DOUBLE_EQ(functional::dice_loss(Probabilities(), one_hot, options).item<double>(),
                   functional::dice_loss(Probabilities(), Target(), options).item<double>());
}

// A third class, empty in both prediction (probability exactly 0) and target:
//   with smoothing (default 1e-5): Dice = (0 + s)/(0 + s) = 1 → loss 0;
//     kMeanAll = (0.24 + 0.4 + 0)/3, kMeanPresent = (0.24 + 0.4)/2 (class 2 is not in the target);
//   without smoothing: Dice = 0/max(0, eps) = 0 → loss 1; kMeanAll = (0.24 + 0.4 + 1)/3, while
//     kMeanPresent still ignores it.
TEST(DiceLossTest, ClassEmptyInPredictionAndTarget) {
  const at::Tensor probabilities =
      torch::cat({Probabilities(), torch::zeros({1, 1, 1, 4}, torch::kDouble)}, 1);
  const auto smoothed = DiceLossOptions().softmax(false);
  EXPECT_NEAR(functional::dice_loss(probabilities, Target(), smoothed).item<double>(),
              (0.24 + 0.4) / 3, kTol);
  const at::Tensor per_class = functional::dice_loss(
      probabilities, Target(), DiceLossOptions(smoothed).reduction(DiceReduction::kNone));
  EXPECT_DOUBLE_EQ(per_class[0][2].item<double>(), 0.0);
  EXPECT_NEAR(
      functional::dice_loss(probabilities, Target(),
                            DiceLossOptions(smoothed).reduction(DiceReduction::kMeanPresent))
          .item<double>(),
      (0.24 + 0.4) / 2, kTol);

  const auto unsmoothed = DiceLossOptions().softmax(false).smooth(0);
  EXPECT_NEAR(functional::dice_loss(probabilities, Target(), unsmoothed).item<double>(),
              (0.24 + 0.4 + 1.0) / 3, 1e-12);
  EXPECT_NEAR(
      functional::dice_loss(probabilities, Target(),
                            DiceLossOptions(unsmoothed).reduction(DiceReduction::kMeanPresent))
          .item<double>(),
      (0.24 + 0.4) / 2, 1e-12);
}

// Two samples; the second predicts class 1 with 0.5 everywhere but its target is all class 0.
//   sample 2, class 1: I = 0, ΣP = 2, ΣT = 0 → Dice 0 → loss 1
//   sample 2, class 0: I = 2, ΣP = 2, ΣT = 4 → Dice 4/6 → loss 1/3
//   batch(true), class 1: I = 0.9, ΣP = 4, ΣT = 1 → Dice 1.8/5 → loss 0.64
//   batch(true), class 0: I = 3.9, ΣP = 4, ΣT = 7 → Dice 7.8/11 → loss 3.2/11
TEST(DiceLossTest, BatchAndPresentReductions) {
  const at::Tensor probabilities =
      torch::cat({Probabilities(), torch::full({1, 2, 1, 4}, 0.5, torch::kDouble)}, 0);
  const at::Tensor target = torch::cat({Target(), torch::zeros({1, 1, 4}, torch::kLong)}, 0);
  const auto options = DiceLossOptions().softmax(false).smooth(0);

  const at::Tensor per_sample = functional::dice_loss(
      probabilities, target, DiceLossOptions(options).reduction(DiceReduction::kNone));
  EXPECT_TRUE(
      torch::allclose(per_sample, torch::tensor({{0.24, 0.4}, {1.0 / 3, 1.0}}, torch::kDouble)));
  const auto foreground = DiceLossOptions(options).include_background(false);
  EXPECT_NEAR(functional::dice_loss(probabilities, target, foreground).item<double>(), 0.7, 1e-12);
  // Class 1 is absent from sample 2's target: only sample 1's 0.4 counts.
  EXPECT_NEAR(
      functional::dice_loss(probabilities, target,
                            DiceLossOptions(foreground).reduction(DiceReduction::kMeanPresent))
          .item<double>(),
      0.4, 1e-12);

  const at::Tensor batched = functional::dice_loss(
      probabilities, target, DiceLossOptions(options).batch(true).reduction(DiceReduction::kNone));
  EXPECT_TRUE(torch::allclose(batched, torch::tensor({{3.2 / 11, 0.64}}, torch::kDouble)));
}

TEST(DiceLossTest, NothingPresentGivesDifferentiableZero) {
  const at::Tensor logits = torch::randn({2, 3, 4, 4}, torch::requires_grad());
  const at::Tensor target = torch::zeros({2, 4, 4}, torch::kLong);
  const at::Tensor loss = functional::dice_loss(
      logits, target,
      DiceLossOptions().include_background(false).reduction(DiceReduction::kMeanPresent));
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  ASSERT_TRUE(logits.grad().defined());
  EXPECT_EQ(logits.grad().abs().sum().item<double>(), 0.0);
}

TEST(DiceLossTest, ModuleMatchesFunctionalAndGradientIsFinite3D) {
  torch::manual_seed(3);
  const at::Tensor logits = torch::randn({2, 3, 4, 5, 6}, torch::requires_grad());
  const at::Tensor target = torch::randint(0, 3, {2, 4, 5, 6}, torch::kLong);
  DiceLoss loss_module(DiceLossOptions().include_background(false));
  const at::Tensor loss = loss_module(logits, target);
  EXPECT_DOUBLE_EQ(
      loss.item<double>(),
      functional::dice_loss(logits, target, DiceLossOptions().include_background(false))
          .item<double>());
  loss.backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  EXPECT_GT(logits.grad().abs().sum().item<double>(), 0.0);
}

TEST(DiceLossTest, PerfectPredictionHasZeroLoss) {
  const at::Tensor target = torch::tensor({0, 1, 2, 2, 1, 0}, torch::kLong).reshape({1, 2, 3});
  const at::Tensor one_hot = torch::one_hot(target, 3).movedim(-1, 1).to(torch::kFloat);
  EXPECT_NEAR(
      functional::dice_loss(one_hot, target, DiceLossOptions().softmax(false)).item<double>(), 0.0,
      1e-6);
}

TEST(DiceLossTest, RejectsConflictingOptionsAtConstruction) {
  EXPECT_THAT([] { DiceLoss(DiceLossOptions().smooth(0).epsilon(0)); },
              ThrowsMessage<c10::Error>(
                  HasSubstr("DiceLossOptions: smooth and epsilon are both 0, so a class empty in "
                            "prediction and target divides 0 by 0")));
  EXPECT_THAT([] { DiceLoss(DiceLossOptions().smooth(-1)); },
              ThrowsMessage<c10::Error>(
                  HasSubstr("DiceLossOptions: smooth must be finite and >= 0, got -1")));
  EXPECT_FALSE(DiceLossOptions().epsilon(-1).Validate().ok());
  EXPECT_TRUE(DiceLossOptions().Validate().ok());
}

TEST(DiceLossTest, RejectsBadTargets) {
  const at::Tensor logits = torch::zeros({1, 2, 1, 4});
  EXPECT_THAT(
      [&] {
        functional::dice_loss(logits, torch::full({1, 1, 4}, 2, torch::kLong));
      },
      ThrowsMessage<c10::Error>(HasSubstr("labels must lie in [0, 2), got values in [2, 2]")));
  EXPECT_THAT(
      [&] {
        functional::dice_loss(logits, torch::zeros({1, 1, 5}, torch::kLong));
      },
      ThrowsMessage<c10::Error>(HasSubstr("does not match input shape")));
  EXPECT_THAT(
      [&] {
        functional::dice_loss(torch::zeros({1, 1, 1, 4}), torch::zeros({1, 1, 4}, torch::kLong),
                              DiceLossOptions().include_background(false));
      },
      ThrowsMessage<c10::Error>(HasSubstr("include_background(false) needs at least 2")));
}

// DeepAtlas' anatomy loss is Dice on probabilities (warped one-hot labels).
TEST(AnatomyLossTest, IsDiceOnProbabilities) {
  AnatomyLoss anatomy;
  EXPECT_NEAR(anatomy(Probabilities(), Target()).item<double>(), 0.32, kTol);
  const at::Tensor one_hot = torch::one_hot(Target(), 2).movedim(-1, 1).to(torch::kDouble);
  EXPECT_NEAR(anatomy(one_hot, Target()).item<double>(), 0.0, 1e-9);
  // Soft targets (e.g. the segmentation net's softmax for an unlabeled target image).
  EXPECT_NEAR(anatomy(Probabilities(), one_hot).item<double>(), 0.32, kTol);
  EXPECT_THAT([] { AnatomyLoss(AnatomyLossOptions().smooth(0).epsilon(0)); },
              ThrowsMessage<c10::Error>(HasSubstr("AnatomyLossOptions: DiceLossOptions: smooth")));
}

}  // namespace
}  // namespace fedjoint::common::losses
