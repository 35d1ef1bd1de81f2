// SupCon (domain labels, external negatives, multi-scale) and the positional contrastive loss.
#include <cmath>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/losses/positional_contrastive_loss.h"
#include "common/losses/supcon_loss.h"

namespace fedjoint::common::losses {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

double Log1pExp(double x) { return std::log(1.0 + std::exp(x)); }

// Three 2-D unit embeddings, labels (domains) 0, 0, 1:
//   z1 = (1, 0), z2 = (0.6, 0.8), z3 = (0, 1);  z1·z2 = 0.6, z1·z3 = 0, z2·z3 = 0.8.
// Anchor 1: P = {2}, A = {2, 3}:
//   L1 = −log( e^{0.6/τ} / (e^{0.6/τ} + e^{0/τ}) ) = log(1 + e^{−0.6/τ})
// Anchor 2: P = {1}, A = {1, 3}:
//   L2 = −log( e^{0.6/τ} / (e^{0.6/τ} + e^{0.8/τ}) ) = log(1 + e^{0.2/τ})
// Anchor 3: no other sample of domain 1 → no positive → skipped.
// τ = 1: L1 = log(1.548812) = 0.437488, L2 = log(2.221403) = 0.798139, mean = 0.617813.
at::Tensor ThreeSamples() {
  return torch::tensor({1.0, 0.0, 0.6, 0.8, 0.0, 1.0}, torch::kDouble).reshape({3, 2});
}
at::Tensor ThreeLabels() { return torch::tensor({0, 0, 1}, torch::kLong); }

TEST(SupConLossTest, HandComputedThreeSamples) {
  for (double tau : {1.0, 0.5, 0.1}) {
    const double l1 = Log1pExp(-0.6 / tau);
    const double l2 = Log1pExp(0.2 / tau);
    const auto options = SupConLossOptions().temperature(tau);
    EXPECT_NEAR(functional::supcon_loss(ThreeSamples(), ThreeLabels(), options).item<double>(),
                (l1 + l2) / 2, 1e-12)
        << "tau " << tau;
    const at::Tensor per_anchor = functional::supcon_loss(
        ThreeSamples(), ThreeLabels(), SupConLossOptions(options).reduction(Reduction::kNone));
    EXPECT_TRUE(torch::allclose(per_anchor, torch::tensor({l1, l2, 0.0}, torch::kDouble)));
  }
  EXPECT_NEAR(
      functional::supcon_loss(ThreeSamples(), ThreeLabels(), SupConLossOptions().temperature(1.0))
          .item<double>(),
      0.617813, 1e-6);
}

TEST(SupConLossTest, NormalizesInside) {
  // Scaling embeddings changes nothing with normalize (default), everything without.
  const at::Tensor scaled = ThreeSamples() * torch::tensor({{2.0}, {5.0}, {0.5}}, torch::kDouble);
  const auto options = SupConLossOptions().temperature(1.0);
  EXPECT_NEAR(functional::supcon_loss(scaled, ThreeLabels(), options).item<double>(), 0.617813,
              1e-6);
  // Raw dot products: z1·z2 = 2·5·0.6 = 6, z1·z3 = 0, z2·z3 = 5·0.5·0.8 = 2.
  EXPECT_NEAR(
      functional::supcon_loss(scaled, ThreeLabels(), SupConLossOptions(options).normalize(false))
          .item<double>(),
      (Log1pExp(-6.0) + Log1pExp(2.0 - 6.0)) / 2, 1e-12);
}

// All local samples belong to one domain (a federated site holds one joint): every A(i) equals
// P(i), so each term is −log 1 = 0. External prototype e = (0, 1) of domain 1 joins every A(i)
// and makes the loss that of the three-sample case above (e plays z3's part, never an anchor).
TEST(SupConLossTest, ExternalNegativesMakeSingleDomainBatchNonTrivial) {
  const at::Tensor local = ThreeSamples().slice(0, 0, 2);
  const at::Tensor labels = torch::tensor({0, 0}, torch::kLong);
  const auto options = SupConLossOptions().temperature(1.0);
  EXPECT_NEAR(functional::supcon_loss(local, labels, options).item<double>(), 0.0, 1e-12);

  const at::Tensor external = torch::tensor({{0.0, 1.0}}, torch::kDouble);
  const at::Tensor external_labels = torch::tensor({1}, torch::kLong);
  EXPECT_NEAR(
      functional::supcon_loss(local, labels, options, external, external_labels).item<double>(),
      (Log1pExp(-0.6) + Log1pExp(0.2)) / 2, 1e-12);
}

// External prototypes e1 = (0, 1) of domain 1 and e2 = (0.8, 0.6) of the anchors' own domain 0.
//   anchor z1 = (1, 0): z1·z2 = 0.6, z1·e1 = 0, z1·e2 = 0.8; lse1 = log(e^0.6 + e^0 + e^0.8)
//   anchor z2 = (0.6, 0.8): z2·z1 = 0.6, z2·e1 = 0.8, z2·e2 = 0.96; lse2 = log(e^0.6+e^0.8+e^0.96)
// external_positives on: P(1) = {z2, e2}: L1 = lse1 − (0.6 + 0.8)/2; P(2) = {z1, e2}:
//   L2 = lse2 − (0.6 + 0.96)/2.
// off: e2 only in the denominators: L1 = lse1 − 0.6, L2 = lse2 − 0.6.
TEST(SupConLossTest, SameDomainExternalsArePositivesOnlyWhenEnabled) {
  const at::Tensor local = ThreeSamples().slice(0, 0, 2);
  const at::Tensor labels = torch::tensor({0, 0}, torch::kLong);
  const at::Tensor external = torch::tensor({{0.0, 1.0}, {0.8, 0.6}}, torch::kDouble);
  const at::Tensor external_labels = torch::tensor({1, 0}, torch::kLong);
  const double lse1 = std::log(std::exp(0.6) + std::exp(0.0) + std::exp(0.8));
  const double lse2 = std::log(std::exp(0.6) + std::exp(0.8) + std::exp(0.96));
  const auto on = SupConLossOptions().temperature(1.0);
  EXPECT_NEAR(functional::supcon_loss(local, labels, on, external, external_labels).item<double>(),
              ((lse1 - 0.7) + (lse2 - 0.78)) / 2, 1e-12);
  const auto off = SupConLossOptions(on).external_positives(false);
  EXPECT_NEAR(functional::supcon_loss(local, labels, off, external, external_labels).item<double>(),
              ((lse1 - 0.6) + (lse2 - 0.6)) / 2, 1e-12);
}

TEST(SupConLossTest, GradientsFiniteEvenAtSmallTemperatureAndWithoutPositives) {
  torch::manual_seed(11);
  for (double tau : {1.0, 0.07, 0.005}) {
    const at::Tensor z = torch::randn({8, 16}, torch::requires_grad());
    const at::Tensor labels = torch::tensor({0, 0, 1, 1, 2, 2, 2, 3}, torch::kLong);  // 3: alone
    const at::Tensor external = torch::randn({3, 16});
    const at::Tensor loss = functional::supcon_loss(z, labels, SupConLossOptions().temperature(tau),
                                                    external, torch::tensor({0, 4, 5}));
    ASSERT_TRUE(std::isfinite(loss.item<double>())) << "tau " << tau;
    loss.backward();
    EXPECT_TRUE(torch::isfinite(z.grad()).all().item<bool>()) << "tau " << tau;
  }
  // A single sample: nobody has a positive; the loss is 0 and backward still works.
  const at::Tensor z = torch::randn({1, 4}, torch::requires_grad());
  const at::Tensor loss = functional::supcon_loss(z, torch::tensor({0}));
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(z.grad()).all().item<bool>());
}

// With positives closer than negatives (z1 = (1,0), z2 = (0.8,0.6), z3 = (0,1), labels 0,0,1):
// L1 = log(1 + e^{(0 − 0.8)/τ}), L2 = log(1 + e^{(0.6 − 0.8)/τ}); lowering τ sharpens the
// softmax and the loss falls toward 0; raising it tends to log|A(i)| = log 2.
TEST(SupConLossTest, TemperatureSharpensTheLoss) {
  const at::Tensor z =
      torch::tensor({1.0, 0.0, 0.8, 0.6, 0.0, 1.0}, torch::kDouble).reshape({3, 2});
  double previous = 0;
  for (double tau : {0.05, 0.1, 0.5, 1.0, 100.0}) {
    const double loss =
        functional::supcon_loss(z, ThreeLabels(), SupConLossOptions().temperature(tau))
            .item<double>();
    EXPECT_NEAR(loss, (Log1pExp(-0.8 / tau) + Log1pExp(-0.2 / tau)) / 2, 1e-12);
    EXPECT_GT(loss, previous);
    previous = loss;
  }
  EXPECT_NEAR(previous, std::log(2.0), 1e-2);
}

TEST(SupConLossTest, RejectsBadTemperatureAndShapes) {
  EXPECT_THAT([] { SupConLoss(SupConLossOptions().temperature(0)); },
              ThrowsMessage<c10::Error>(
                  HasSubstr("SupConLossOptions: temperature must be finite and > 0, got 0")));
  EXPECT_THAT(
      [] {
        functional::supcon_loss(torch::zeros({3, 2}), torch::tensor({0, 0, 1}), SupConLossOptions(),
                                torch::zeros({1, 2}));
      },
      ThrowsMessage<c10::Error>(HasSubstr("need one integer label each (external_labels)")));
  EXPECT_THAT(
      [] {
        functional::supcon_loss(torch::zeros({3, 2}), torch::tensor({0, 0}));
      },
      ThrowsMessage<c10::Error>(HasSubstr("2 labels for embeddings of shape [3, 2]")));
}

TEST(MultiScaleSupConLossTest, WeightedSumOverScales) {
  torch::manual_seed(2);
  const std::vector<at::Tensor> z = {torch::randn({6, 8}), torch::randn({6, 4})};
  const std::vector<at::Tensor> external = {torch::randn({2, 8}), torch::randn({2, 4})};
  const at::Tensor labels = torch::tensor({0, 0, 0, 1, 1, 1});
  const at::Tensor external_labels = torch::tensor({2, 3});
  const auto supcon = SupConLossOptions().temperature(0.2);
  MultiScaleSupConLoss loss(MultiScaleSupConLossOptions().scale_weights({1.0, 0.5}).supcon(supcon));
  const double expected =
      functional::supcon_loss(z[0], labels, supcon, external[0], external_labels).item<double>() +
      0.5 * functional::supcon_loss(z[1], labels, supcon, external[1], external_labels)
                .item<double>();
  EXPECT_NEAR(loss(z, labels, external, external_labels).item<double>(), expected, 1e-6);
  EXPECT_THAT([&] { loss(std::vector<at::Tensor>{z[0]}, labels); },
              ThrowsMessage<c10::Error>(HasSubstr("1 scales of embeddings for 2 scale weights")));
  EXPECT_THAT(
      [] {
        MultiScaleSupConLoss(MultiScaleSupConLossOptions().scale_weights({1.0, -0.1}));
      },
      ThrowsMessage<c10::Error>(HasSubstr("scale_weights[1] must be finite and >= 0, got -0.1")));
  EXPECT_THAT([] { MultiScaleSupConLoss(MultiScaleSupConLossOptions().scale_weights({0.0})); },
              ThrowsMessage<c10::Error>(HasSubstr("every scale weight is 0")));
}

// Positions 0.1, 0.2, 0.5, 0.55 with θ = 0.15: |0.1−0.2| = 0.1 and |0.5−0.55| = 0.05 are below θ;
// every other pair differs by ≥ 0.3. So the mask pairs slices {0,1} and {2,3} — the same mask as
// labels 0,0,1,1, and the loss must equal SupCon with those labels.
TEST(PositionalContrastiveLossTest, HandComputedMask) {
  const at::Tensor positions = torch::tensor({0.1, 0.2, 0.5, 0.55}, torch::kDouble);
  const at::Tensor mask = functional::positional_positive_mask(positions, 0.15);
  const at::Tensor expected = torch::tensor({0, 1, 0, 0,  //
                                             1, 0, 0, 0,  //
                                             0, 0, 0, 1,  //
                                             0, 0, 1, 0},
                                            torch::kBool)
                                  .reshape({4, 4});
  EXPECT_TRUE(torch::equal(mask, expected)) << mask;

  torch::manual_seed(4);
  const at::Tensor z = torch::randn({4, 5});
  PositionalContrastiveLoss loss(PositionalContrastiveLossOptions().threshold(0.15));
  EXPECT_NEAR(
      loss(z, positions).item<double>(),
      functional::supcon_loss(z, torch::tensor({0, 0, 1, 1}), SupConLossOptions().temperature(0.1))
          .item<double>(),
      1e-6);
  // Two views of one slice (same position) are positives for any θ > 0.
  const at::Tensor views =
      functional::positional_positive_mask(torch::tensor({0.3, 0.3, 0.9}, torch::kDouble), 1e-6);
  EXPECT_TRUE(views[0][1].item<bool>());
  EXPECT_FALSE(views[0][2].item<bool>());
  EXPECT_THAT([] { PositionalContrastiveLoss(PositionalContrastiveLossOptions().threshold(0)); },
              ThrowsMessage<c10::Error>(HasSubstr("threshold must be finite and > 0, got 0")));
}

}  // namespace
}  // namespace fedjoint::common::losses
