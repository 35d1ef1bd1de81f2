// DeepAtlas registration losses: NCC similarity and the diffusion regularizer.
#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/losses/diffusion_loss.h"
#include "common/losses/ncc_loss.h"

namespace fedjoint::common::losses {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

TEST(NccLossTest, IdenticalImagesGiveOneAndNegationMinusOne) {
  torch::manual_seed(1);
  const at::Tensor image = torch::rand({2, 1, 16, 16}, torch::kDouble);
  for (int64_t window : {0, 3, 5}) {
    const auto options = NccLossOptions().window(window).epsilon(1e-12);
    EXPECT_TRUE(torch::allclose(functional::ncc(image, image, options),
                                torch::ones({2}, torch::kDouble), 1e-6, 1e-6))
        << "window " << window;
    EXPECT_NEAR(functional::ncc_loss(image, image, options).item<double>(), 0.0, 1e-6);
    EXPECT_TRUE(torch::allclose(functional::ncc(image, -image, options),
                                -torch::ones({2}, torch::kDouble), 1e-6, 1e-6));
    EXPECT_NEAR(functional::ncc_loss(image, -image, options).item<double>(), 2.0, 1e-6);
    // NCC ignores brightness and contrast: b = 2a + 3 matches perfectly.
    EXPECT_NEAR(functional::ncc_loss(image, 2 * image + 3, options).item<double>(), 0.0, 1e-6);
  }
}

// a = 1 2 3 4, b = 1 3 2 4: means 2.5; deviations (−1.5 −0.5 0.5 1.5) and (−1.5 0.5 −0.5 1.5);
// Σ dx·dy = 2.25 − 0.25 − 0.25 + 2.25 = 4, Σ dx² = Σ dy² = 5 → NCC = 4/5 = 0.8, loss 0.2.
TEST(NccLossTest, HandComputedGlobal) {
  const at::Tensor a = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble).reshape({1, 1, 2, 2});
  const at::Tensor b = torch::tensor({1.0, 3.0, 2.0, 4.0}, torch::kDouble).reshape({1, 1, 2, 2});
  NccLoss loss(NccLossOptions().epsilon(1e-12));
  EXPECT_NEAR(loss(a, b).item<double>(), 0.2, 1e-9);
}

TEST(NccLossTest, ThreeDimensionalLocalWindowAndGradient) {
  torch::manual_seed(2);
  const at::Tensor fixed = torch::rand({1, 1, 6, 7, 8});
  const at::Tensor moving = (fixed + 0.3 * torch::rand({1, 1, 6, 7, 8})).requires_grad_();
  const at::Tensor loss = functional::ncc_loss(moving, fixed, NccLossOptions().window(3));
  EXPECT_GT(loss.item<double>(), 0.0);
  EXPECT_LT(loss.item<double>(), 1.0);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(moving.grad()).all().item<bool>());
}

TEST(NccLossTest, ConstantImageHasNoCorrelation) {
  const at::Tensor constant = torch::full({1, 1, 4, 4}, 7.0, torch::kDouble);
  const at::Tensor other = torch::rand({1, 1, 4, 4}, torch::kDouble);
  EXPECT_NEAR(functional::ncc_loss(constant, other).item<double>(), 1.0, 1e-12);
}

TEST(NccLossTest, RejectsEvenWindow) {
  EXPECT_THAT([] { NccLoss(NccLossOptions().window(4)); },
              ThrowsMessage<c10::Error>(HasSubstr(
                  "NccLossOptions: window must be 0 (global) or an odd size >= 3, got 4")));
  EXPECT_THAT([] { NccLoss(NccLossOptions().epsilon(0)); },
              ThrowsMessage<c10::Error>(HasSubstr("epsilon must be finite and > 0")));
}

// u(x, y) = (a·x + b·y, c·x + d·y) with x along W and y along H: every forward difference is
// constant (∂u0/∂x = a, ∂u0/∂y = b, ∂u1/∂x = c, ∂u1/∂y = d), so mean‖∇u‖² = a² + b² + c² + d²
// = 0.25 + 1 + 4 + 0.0625 = 5.3125 for (a, b, c, d) = (0.5, −1, 2, 0.25).
TEST(DiffusionLossTest, LinearFieldGivesSquaredFrobeniusNorm) {
  const at::Tensor y = torch::arange(5, torch::kDouble).reshape({5, 1}).expand({5, 6});
  const at::Tensor x = torch::arange(6, torch::kDouble).reshape({1, 6}).expand({5, 6});
  const at::Tensor u = torch::stack({0.5 * x - 1.0 * y, 2.0 * x + 0.25 * y}).unsqueeze(0);
  DiffusionLoss loss;
  EXPECT_NEAR(loss(u).item<double>(), 5.3125, 1e-12);
  // Two samples: the same field and its double (4× the energy) → mean 2.5 × 5.3125.
  EXPECT_NEAR(loss(torch::cat({u, 2 * u})).item<double>(), 2.5 * 5.3125, 1e-12);
  // A translation has no gradient.
  EXPECT_EQ(loss(torch::full({1, 2, 5, 6}, 3.0)).item<double>(), 0.0);
}

TEST(DiffusionLossTest, ThreeDimensionalLinearFieldAndGradient) {
  // u = (z, 2y, 3x) in a [D=3, H=4, W=5] grid: Σ A² = 1 + 4 + 9 = 14.
  const at::Tensor z = torch::arange(3, torch::kDouble).reshape({3, 1, 1}).expand({3, 4, 5});
  const at::Tensor y = torch::arange(4, torch::kDouble).reshape({1, 4, 1}).expand({3, 4, 5});
  const at::Tensor x = torch::arange(5, torch::kDouble).reshape({1, 1, 5}).expand({3, 4, 5});
  const at::Tensor u = torch::stack({z, 2 * y, 3 * x}).unsqueeze(0).requires_grad_();
  const at::Tensor loss = functional::diffusion_loss(u);
  EXPECT_NEAR(loss.item<double>(), 14.0, 1e-12);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(u.grad()).all().item<bool>());
  EXPECT_THAT(
      [] {
        functional::diffusion_loss(torch::zeros({1, 3, 4, 4}));
      },
      ThrowsMessage<c10::Error>(HasSubstr("displacement must be floating [B, 2, H, W]")));
}

}  // namespace
}  // namespace fedjoint::common::losses
