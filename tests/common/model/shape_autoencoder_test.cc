#include "common/model/shape_autoencoder.h"

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/model/joint_spec.h"

namespace fedjoint::common::model {
namespace {

TEST(ShapeAutoEncoderTest, CodeAndReconstructionShapes) {
  ShapeAutoEncoder ae(ShapeAutoEncoderOptions(PaddedShapeChannels(DefaultJoints())));
  at::Tensor x = torch::rand({2, 5, 64, 64});
  EXPECT_EQ(ae->encode(x).sizes(), c10::IntArrayRef({2, 8, 4, 4}));
  EXPECT_EQ(ae->forward(x).sizes(), c10::IntArrayRef({2, 5, 64, 64}));
  at::Tensor odd = torch::rand({1, 5, 50, 70});
  EXPECT_EQ(ae->encode(odd).sizes(), c10::IntArrayRef({1, 8, 4, 5}));
  EXPECT_EQ(ae->forward(odd).sizes(), c10::IntArrayRef({1, 5, 50, 70}));
  EXPECT_THROW(ae->encode(torch::rand({1, 4, 32, 32})), c10::Error);
}

TEST(ShapeAutoEncoderTest, OneHotPaddedAndPadChannels) {
  at::Tensor labels = torch::tensor({0, 1, 2, 1}, torch::kLong).view({1, 2, 2});
  at::Tensor one_hot = OneHotPadded(labels, 5);
  EXPECT_EQ(one_hot.sizes(), c10::IntArrayRef({1, 5, 2, 2}));
  EXPECT_TRUE(torch::equal(one_hot.sum(1), torch::ones({1, 2, 2})));
  EXPECT_EQ(one_hot[0][1][0][1].item<float>(), 1.0f);
  EXPECT_EQ(one_hot.narrow(1, 3, 2).abs().sum().item<float>(), 0.0f);
  EXPECT_THROW(OneHotPadded(torch::full({1, 2, 2}, 5, torch::kLong), 5), c10::Error);

  at::Tensor probabilities = torch::softmax(torch::randn({2, 3, 4, 4}), 1);
  at::Tensor padded = PadChannels(probabilities, 5);
  EXPECT_EQ(padded.sizes(), c10::IntArrayRef({2, 5, 4, 4}));
  EXPECT_TRUE(torch::equal(padded.narrow(1, 0, 3), probabilities));
  EXPECT_EQ(padded.narrow(1, 3, 2).abs().sum().item<float>(), 0.0f);
}

TEST(ShapeAutoEncoderTest, LearnsToReconstructMasks) {
  torch::manual_seed(5);
  ShapeAutoEncoder ae(ShapeAutoEncoderOptions(3).base_channels(8).levels(2));
  // Discs of two labels at random places.
  at::Tensor yy = torch::arange(32).view({32, 1}).expand({32, 32});
  at::Tensor xx = torch::arange(32).view({1, 32}).expand({32, 32});
  std::vector<at::Tensor> masks;
  for (int i = 0; i < 4; ++i) {
    at::Tensor mask = torch::zeros({32, 32}, torch::kLong);
    mask.masked_fill_((yy - 8 - 4 * i).pow(2) + (xx - 10).pow(2) < 36, 1);
    mask.masked_fill_((yy - 20).pow(2) + (xx - 16 - 3 * i).pow(2) < 25, 2);
    masks.push_back(mask);
  }
  at::Tensor labels = torch::stack(masks);
  at::Tensor input = OneHotPadded(labels, 3);
  torch::optim::Adam optimizer(ae->parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    optimizer.zero_grad();
    at::Tensor loss = torch::nn::functional::cross_entropy(ae->forward(input), labels);
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first);
}

}  // namespace
}  // namespace fedjoint::common::model
