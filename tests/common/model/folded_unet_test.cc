#include "common/model/folded_unet.h"

#include <map>
#include <string>
#include <tuple>

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/model/norm_test_util.h"

namespace fedjoint::common::model {
namespace {

using ::testing::HasSubstr;

using test_util::RandomizeNorms;
using test_util::Snapshot;

// max |a - b| / max |b|: the tolerance is relative to the logits' scale.
double RelativeError(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

at::Tensor Reference(UNetImpl& model, const at::Tensor& x, int64_t joint) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  at::Tensor logits = model.forward(x, joint).logits[static_cast<size_t>(joint)];
  model.train(was_training);
  return logits;
}

// depth, variant, joint, channels-last, H, W
using Case = std::tuple<int64_t, Variant, int64_t, bool, int64_t, int64_t>;
class FoldedUNetTest : public ::testing::TestWithParam<Case> {};

TEST_P(FoldedUNetTest, EqualsEvalModeOutputOfTheUnfoldedNetwork) {
  const auto [depth, variant, joint, channels_last, height, width] = GetParam();
  torch::manual_seed(7);
  UNet model(UNetOptions().depth(depth).width_multiplier(0.25).variant(variant));
  RandomizeNorms(*model);
  model->train();  // folding uses the running statistics whatever the mode
  const auto before = Snapshot(*model);

  absl::StatusOr<FoldedUNet> folded =
      FoldBatchNorm(*model, joint, FoldOptions{.channels_last = channels_last});
  ASSERT_TRUE(folded.ok()) << folded.status();
  EXPECT_EQ(folded->joint(), joint);
  EXPECT_EQ(folded->out_channels(), model->OutputChannels(joint));
  EXPECT_EQ(folded->channels_last(), channels_last);
  // The model is left exactly as it was (values and mode).
  EXPECT_TRUE(model->is_training());
  for (const auto& [name, tensor] : Snapshot(*model)) {
    EXPECT_TRUE(torch::equal(tensor, before.at(name))) << name;
  }

  at::Tensor x = torch::randn({3, 1, height, width});
  at::Tensor expected = Reference(*model, x, joint);
  at::Tensor actual;
  {
    c10::InferenceMode inference;
    actual = folded->forward(x).contiguous();
  }
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_LT(RelativeError(actual, expected), 1e-4);
  // Not trivially equal: the normalization matters for these statistics.
  EXPECT_GT(expected.abs().max().item<double>(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, FoldedUNetTest,
    ::testing::Values(
        Case{18, Variant::kDomain, 0, false, 64, 64}, Case{18, Variant::kDomain, 2, false, 64, 96},
        Case{18, Variant::kDomain, 1, true, 64, 64}, Case{18, Variant::kShared, 0, false, 64, 64},
        Case{18, Variant::kShared, 2, true, 96, 64}, Case{50, Variant::kDomain, 1, false, 64, 64},
        Case{50, Variant::kShared, 1, true, 64, 64},
        // Sizes that are not multiples of 32 (the decoder upsamples to each skip).
        Case{18, Variant::kDomain, 2, false, 70, 50}));

TEST(FoldedUNetTest, IsACopyThatLaterChangesToTheModelDoNotReach) {
  torch::manual_seed(5);
  UNet model(UNetOptions().width_multiplier(0.25));
  RandomizeNorms(*model);
  at::Tensor x = torch::randn({2, 1, 64, 64});
  auto folded = FoldBatchNorm(*model, 1);
  ASSERT_TRUE(folded.ok());
  torch::NoGradGuard no_grad;
  const at::Tensor first = folded->forward(x);
  for (auto& p : model->parameters()) p.mul_(0.5);
  RandomizeNorms(*model);
  EXPECT_TRUE(torch::equal(folded->forward(x), first));
}

TEST(FoldedUNetTest, RejectsAJointOutOfRange) {
  UNet model(UNetOptions().width_multiplier(0.25));
  auto folded = FoldBatchNorm(*model, 3);
  EXPECT_EQ(folded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(folded.status().message(), HasSubstr("joint 3 is out of range [0, 3)"));
  EXPECT_EQ(FoldBatchNorm(*model, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FoldedUNetTest, HasTheUnfoldedConvolutionsPlusOneBiasPerFoldedConvolution) {
  UNet model(UNetOptions().width_multiplier(0.25));
  auto folded = FoldBatchNorm(*model, 0);
  ASSERT_TRUE(folded.ok());
  int64_t conv_weights = 0, biases = 0;
  for (const auto& item : model->named_modules()) {
    const std::string& name = item.key();
    auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(item.value().get());
    if (conv == nullptr || (name.starts_with("heads.") && name != "heads.ankle")) continue;
    conv_weights += conv->weight.numel();
    biases += conv->weight.size(0);  // the head's own bias, or the folded one
  }
  EXPECT_EQ(folded->num_parameters(), conv_weights + biases);
}

}  // namespace
}  // namespace fedjoint::common::model
