#include "common/model/transfer.h"

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/model/unet.h"

namespace fedjoint::common::model {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

JointSpec Ankle() { return {"ankle", {"calcaneus", "talus", "tibia"}}; }
JointSpec Knee() { return {"knee", {"femur", "tibia", "patella", "fibula"}}; }

tensors::TensorMap WeightsOf(std::vector<JointSpec> joints, uint64_t seed) {
  torch::manual_seed(seed);
  UNet model(UNetOptions(std::move(joints)).width_multiplier(0.125));
  tensors::TensorMap weights;
  for (const auto& p : model->named_parameters()) weights[p.key()] = p.value().detach().clone();
  for (const auto& b : model->named_buffers()) weights[b.key()] = b.value().detach().clone();
  // Distinct running statistics, so a copied norm is told apart from a fresh one.
  for (auto& [name, tensor] : weights) {
    if (name.ends_with("running_mean")) tensor.uniform_(-1, 1);
  }
  return weights;
}

TEST(TransferWeights, AnkleModelStartsAKneeModel) {
  const tensors::TensorMap ankle = WeightsOf({Ankle()}, 1);
  tensors::TensorMap knee = WeightsOf({Knee()}, 2);
  const tensors::TensorMap fresh_knee = knee;

  auto report = TransferWeights(ankle, knee);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->mismatched, IsEmpty());
  // Convolutions: same name and shape.
  EXPECT_TRUE(torch::equal(knee.at("encoder.conv1.weight"), ankle.at("encoder.conv1.weight")));
  // The knee's norms come from the ankle's only domain.
  EXPECT_TRUE(torch::equal(knee.at("encoder.bn1.norms.knee.running_mean"),
                           ankle.at("encoder.bn1.norms.ankle.running_mean")));
  EXPECT_THAT(report->copied, Contains("encoder.bn1.norms.knee.weight"));
  // The knee head has no counterpart: it keeps its fresh values and is listed.
  EXPECT_TRUE(torch::equal(knee.at("heads.knee.weight"), fresh_knee.at("heads.knee.weight")));
  EXPECT_THAT(report->fresh, Contains("heads.knee.weight"));
  EXPECT_EQ(report->copied.size() + report->fresh.size(), knee.size());
  EXPECT_THAT(report->ToString(), HasSubstr("heads.knee.weight"));
}

TEST(TransferWeights, SeveralSourceDomainsLeaveOtherNormsFresh) {
  const tensors::TensorMap source = WeightsOf({Ankle(), Knee()}, 1);
  tensors::TensorMap target = WeightsOf({{"shoulder", {"humerus", "scapula"}}}, 2);
  const tensors::TensorMap fresh = target;

  auto report = TransferWeights(source, target);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(torch::equal(target.at("encoder.bn1.norms.shoulder.running_mean"),
                           fresh.at("encoder.bn1.norms.shoulder.running_mean")));
  EXPECT_THAT(report->fresh, Contains("encoder.bn1.norms.shoulder.running_mean"));
  EXPECT_TRUE(torch::equal(target.at("encoder.conv1.weight"), source.at("encoder.conv1.weight")));
}

TEST(TransferWeights, SameJointCopiesEverything) {
  const tensors::TensorMap source = WeightsOf({Knee()}, 1);
  tensors::TensorMap target = WeightsOf({Knee()}, 2);
  auto report = TransferWeights(source, target);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->fresh, IsEmpty());
  for (const auto& [name, tensor] : source)
    EXPECT_TRUE(torch::equal(target.at(name), tensor)) << name;
}

TEST(TransferWeights, ModelOfAnotherWidthCopiesOnlyWhatFits) {
  torch::manual_seed(3);
  UNet wide(UNetOptions({Knee()}).width_multiplier(0.25));
  tensors::TensorMap source;
  for (const auto& p : wide->named_parameters()) source[p.key()] = p.value().detach().clone();
  tensors::TensorMap target = WeightsOf({Knee()}, 2);
  const tensors::TensorMap before = target;

  auto report = TransferWeights(source, target);
  ASSERT_TRUE(report.ok()) << report.status();  // the narrowest decoder blocks have 8 channels
  EXPECT_THAT(report->mismatched,
              Contains(HasSubstr("encoder.conv1.weight: source [16, 1, 7, 7]")));
  EXPECT_TRUE(torch::equal(target.at("encoder.conv1.weight"), before.at("encoder.conv1.weight")));
  for (const auto& name : report->copied) {
    EXPECT_EQ(target.at(name).sizes(), before.at(name).sizes()) << name;
    EXPECT_TRUE(torch::equal(target.at(name), source.at(name))) << name;
  }
}

TEST(TransferWeights, UnrelatedSourceIsRefusedAndTargetUnchanged) {
  tensors::TensorMap target = WeightsOf({Knee()}, 2);
  const tensors::TensorMap before = target;
  tensors::TensorMap unrelated{{"fc.weight", torch::zeros({2, 2})}};
  auto report = TransferWeights(unrelated, target);
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(std::string(report.status().message()), HasSubstr("shares no tensor"));
  for (const auto& [name, tensor] : before) EXPECT_TRUE(torch::equal(target.at(name), tensor));
}

}  // namespace
}  // namespace fedjoint::common::model
