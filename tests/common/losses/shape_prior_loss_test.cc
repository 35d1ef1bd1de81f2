#include "common/losses/shape_prior_loss.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

namespace fedjoint::common::losses {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// A 1x4 image, two classes; class-1 probabilities 0.9 0.8 0.1 0.2, target 1 0 0 0.
// Encoder E(x) = per-class area Σ_pixels x: E(p) = (2.0, 2.0), E(onehot(y)) = (3, 1).
//   kSquaredL2Mean: ((2−3)² + (2−1)²)/2 = 1;  kSquaredL2Sum: 2;
//   kCosine: 1 − (2·3 + 2·1)/(√8·√10) = 1 − 8/√80 = 0.105573.
at::Tensor Probabilities() {
  const at::Tensor p1 = torch::tensor({0.9, 0.8, 0.1, 0.2}, torch::kDouble).reshape({1, 1, 1, 4});
  return torch::cat({1 - p1, p1}, 1);
}
at::Tensor Target() { return torch::tensor({1, 0, 0, 0}, torch::kLong).reshape({1, 1, 4}); }
at::Tensor Area(const at::Tensor& x) { return x.sum({2, 3}); }

TEST(ShapePriorLossTest, HandComputedForms) {
  const auto options = ShapePriorLossOptions().softmax(false);
  EXPECT_NEAR(functional::shape_prior_loss(Probabilities(), Target(), Area, options).item<double>(),
              1.0, 1e-12);
  EXPECT_NEAR(functional::shape_prior_loss(
                  Probabilities(), Target(), Area,
                  ShapePriorLossOptions(options).form(ShapePriorForm::kSquaredL2Sum))
                  .item<double>(),
              2.0, 1e-12);
  EXPECT_NEAR(functional::shape_prior_loss(
                  Probabilities(), Target(), Area,
                  ShapePriorLossOptions(options).form(ShapePriorForm::kCosine).weight(0.5))
                  .item<double>(),
              0.5 * (1 - 8 / std::sqrt(80.0)), 1e-12);
}

// A small shape encoder with a batch norm, whose running statistics must not move.
class TinyEncoderImpl : public torch::nn::Module {
 public:
  TinyEncoderImpl()
      : conv(register_module("conv",
                             torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).stride(2)))),
        norm(register_module("norm", torch::nn::BatchNorm2d(4))) {}
  at::Tensor forward(const at::Tensor& x) { return torch::relu(norm(conv(x))).flatten(1); }

  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d norm;
};
TORCH_MODULE(TinyEncoder);

TEST(ShapePriorLossTest, FrozenEncoderGetsNoGradientWhilePredictionDoes) {
  torch::manual_seed(9);
  TinyEncoder encoder;
  ShapePriorLoss loss{torch::nn::AnyModule(encoder)};
  loss->train();  // must not put the encoder's batch norm in training mode
  EXPECT_FALSE(encoder->is_training());
  const at::Tensor running_mean = encoder->norm->running_mean.clone();

  const at::Tensor logits = torch::randn({2, 3, 9, 9}, torch::requires_grad());
  const at::Tensor target = torch::randint(0, 3, {2, 9, 9}, torch::kLong);
  const at::Tensor value = loss(logits, target);
  value.backward();
  ASSERT_TRUE(logits.grad().defined());
  EXPECT_GT(logits.grad().abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  ASSERT_FALSE(encoder->parameters().empty());
  for (const at::Tensor& parameter : encoder->parameters()) {
    EXPECT_FALSE(parameter.requires_grad());
    EXPECT_FALSE(parameter.grad().defined());
  }
  EXPECT_TRUE(torch::equal(running_mean, encoder->norm->running_mean));
}

// The form for a shape auto-encoder whose code is encode(), not forward().
TEST(ShapePriorLossTest, OwnerAndEncodeFunctionFreezeTheOwner) {
  TinyEncoder encoder;
  ShapePriorLoss loss(encoder.ptr(), [encoder](const at::Tensor& x) mutable {
    return encoder->forward(x).square();
  });
  EXPECT_FALSE(encoder->is_training());
  const at::Tensor logits = torch::randn({1, 3, 9, 9}, torch::requires_grad());
  loss(logits, torch::randint(0, 3, {1, 9, 9}, torch::kLong)).backward();
  EXPECT_GT(logits.grad().abs().sum().item<double>(), 0.0);
  for (const at::Tensor& parameter : encoder->parameters()) {
    EXPECT_FALSE(parameter.grad().defined());
  }
}

TEST(ShapePriorLossTest, PerfectPredictionHasZeroLoss) {
  const at::Tensor one_hot = torch::one_hot(Target(), 2).movedim(-1, 1).to(torch::kDouble);
  EXPECT_EQ(
      functional::shape_prior_loss(one_hot, Target(), Area, ShapePriorLossOptions().softmax(false))
          .item<double>(),
      0.0);
}

TEST(ShapePriorLossTest, RejectsNegativeWeight) {
  EXPECT_THAT(
      [] {
        ShapePriorLoss(torch::nn::AnyModule(torch::nn::Flatten()),
                       ShapePriorLossOptions().weight(-1));
      },
      ThrowsMessage<c10::Error>(
          HasSubstr("ShapePriorLossOptions: weight must be finite and >= 0, got -1")));
}

}  // namespace
}  // namespace fedjoint::common::losses
