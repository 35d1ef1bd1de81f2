#include "common/model/pretrained.h"

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using StateDict = std::map<std::string, at::Tensor>;

void AddNorm(StateDict& sd, const std::string& prefix, int64_t channels) {
  sd[prefix + ".weight"] = torch::rand({channels}) + 0.5;
  sd[prefix + ".bias"] = torch::randn({channels});
  sd[prefix + ".running_mean"] = torch::randn({channels});
  sd[prefix + ".running_var"] = torch::rand({channels}) + 0.5;
  sd[prefix + ".num_batches_tracked"] = torch::tensor(12345, torch::kLong);
}

// torchvision's resnet18().state_dict() layout, written out independently of the model code.
StateDict TorchvisionResNet18() {
  torch::manual_seed(7);
  StateDict sd;
  sd["conv1.weight"] = torch::randn({64, 3, 7, 7});
  AddNorm(sd, "bn1", 64);
  int64_t in = 64;
  for (int64_t stage = 1; stage <= 4; ++stage) {
    const int64_t planes = 64 << (stage - 1);
    for (int64_t block = 0; block < 2; ++block) {
      const std::string p = "layer" + std::to_string(stage) + "." + std::to_string(block);
      sd[p + ".conv1.weight"] = torch::randn({planes, block == 0 ? in : planes, 3, 3});
      AddNorm(sd, p + ".bn1", planes);
      sd[p + ".conv2.weight"] = torch::randn({planes, planes, 3, 3});
      AddNorm(sd, p + ".bn2", planes);
      if (block == 0 && stage > 1) {
        sd[p + ".downsample.0.weight"] = torch::randn({planes, in, 1, 1});
        AddNorm(sd, p + ".downsample.1", planes);
      }
    }
    in = planes;
  }
  sd["fc.weight"] = torch::randn({1000, 512});
  sd["fc.bias"] = torch::randn({1000});
  return sd;
}

int64_t FloatElements(const StateDict& sd) {
  int64_t n = 0;
  for (const auto& [key, value] : sd) {
    if (!key.ends_with("running_mean") && !key.ends_with("running_var") &&
        !key.ends_with("num_batches_tracked")) {
      n += value.numel();
    }
  }
  return n;
}

UNet FullWidth(int64_t in_channels = 1) {
  return UNet(UNetOptions().width_multiplier(1.0).in_channels(in_channels));
}

TEST(PretrainedTest, GeneratedStateDictHasTorchvisionResNet18Size) {
  EXPECT_EQ(FloatElements(TorchvisionResNet18()), 11'689'512);
}

TEST(PretrainedTest, LoadsEveryKeyIntoEveryDomainAndSumsFirstConvOverRgb) {
  const StateDict sd = TorchvisionResNet18();
  UNet model = FullWidth();
  auto report = LoadTorchvisionEncoder(model, sd);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->loaded.size(), 120u);  // 20 convs + 20 norms x 5 tensors
  EXPECT_EQ(report->tensors_written, 20 + 100 * 3);
  EXPECT_THAT(report->ignored, ElementsAre("fc.bias", "fc.weight"));
  EXPECT_THAT(report->missing, IsEmpty());

  auto params = model->named_parameters();
  auto buffers = model->named_buffers();
  EXPECT_EQ(params["encoder.conv1.weight"].sizes(), c10::IntArrayRef({64, 1, 7, 7}));
  EXPECT_TRUE(torch::allclose(params["encoder.conv1.weight"],
                              sd.at("conv1.weight").sum(1, /*keepdim=*/true)));
  EXPECT_TRUE(
      torch::equal(params["encoder.layer3.1.conv2.weight"], sd.at("layer3.1.conv2.weight")));
  for (const char* joint : {"ankle", "knee", "shoulder"}) {
    const std::string j = joint;
    EXPECT_TRUE(torch::equal(params["encoder.bn1.norms." + j + ".weight"], sd.at("bn1.weight")));
    EXPECT_TRUE(torch::equal(buffers["encoder.layer3.0.downsample.1.norms." + j + ".running_var"],
                             sd.at("layer3.0.downsample.1.running_var")));
    EXPECT_TRUE(torch::equal(buffers["encoder.layer4.1.bn2.norms." + j + ".running_mean"],
                             sd.at("layer4.1.bn2.running_mean")));
    EXPECT_EQ(buffers["encoder.layer1.0.bn1.norms." + j + ".num_batches_tracked"].item<int64_t>(),
              12345);
  }
}

TEST(PretrainedTest, ThreeChannelModelCopiesFirstConvAsIs) {
  const StateDict sd = TorchvisionResNet18();
  ResNetEncoder encoder(ResNetEncoderOptions().in_channels(3).domains({"a", "b"}));
  ASSERT_TRUE(LoadTorchvisionEncoder(*encoder, sd).ok());
  EXPECT_TRUE(torch::equal(encoder->named_parameters()["conv1.weight"], sd.at("conv1.weight")));
  EXPECT_TRUE(torch::equal(encoder->named_buffers()["bn1.norms.b.running_mean"],
                           sd.at("bn1.running_mean")));
}

TEST(PretrainedTest, ReportsMissingUnexpectedAndMismatchedKeys) {
  StateDict sd = TorchvisionResNet18();
  sd.erase("layer4.1.bn2.weight");
  sd.erase("layer2.0.bn1.num_batches_tracked");  // optional: not reported
  sd["extra.weight"] = torch::zeros({3});
  sd["layer1.0.conv1.weight"] = torch::zeros({64, 64, 1, 1});

  UNet model = FullWidth();
  const at::Tensor before = model->named_parameters()["encoder.layer3.1.conv2.weight"].clone();
  auto strict = LoadTorchvisionEncoder(model, sd);
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(strict.status().message(),
            "torchvision weights do not fit the ResNet-18 encoder (nothing was loaded): loaded 0 "
            "keys (0 model tensors written); missing 1 (layer4.1.bn2.weight); unexpected 1 "
            "(extra.weight); shape mismatch 1 (layer1.0.conv1.weight: state dict [64, 64, 1, 1] "
            "vs model [64, 64, 3, 3]); ignored 2 (fc.bias, fc.weight)");
  EXPECT_TRUE(torch::equal(before, model->named_parameters()["encoder.layer3.1.conv2.weight"]))
      << "a failed strict load must not modify the model";

  auto lenient = LoadTorchvisionEncoder(model, sd, LoadOptions{.strict = false});
  ASSERT_TRUE(lenient.ok()) << lenient.status();
  EXPECT_FALSE(lenient->clean());
  EXPECT_THAT(lenient->missing, ElementsAre("layer4.1.bn2.weight"));
  EXPECT_THAT(lenient->unexpected, ElementsAre("extra.weight"));
  EXPECT_THAT(lenient->mismatched,
              ElementsAre("layer1.0.conv1.weight: state dict [64, 64, 1, 1] vs model [64, 64, 3, "
                          "3]"));
  EXPECT_EQ(lenient->loaded.size(), 120u - 2u - 1u);  // minus missing, mismatched, optional
  EXPECT_TRUE(torch::equal(model->named_parameters()["encoder.layer3.1.conv2.weight"],
                           sd.at("layer3.1.conv2.weight")));
}

TEST(PretrainedTest, WidthOtherThanOneIsRefusedNamingTheFirstMismatch) {
  const StateDict sd = TorchvisionResNet18();
  UNet model(UNetOptions().width_multiplier(0.25));
  auto report = LoadTorchvisionEncoder(model, sd, LoadOptions{.strict = false});
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().message(),
            "torchvision weights need width_multiplier 1.0, the model has 0.25: first mismatch "
            "conv1.weight: state dict [64, 3, 7, 7] vs model [16, 1, 7, 7]");
}

TEST(PretrainedTest, DepthMismatchIsReported) {
  const StateDict sd = TorchvisionResNet18();
  ResNetEncoder encoder(ResNetEncoderOptions().depth(34));
  auto report = LoadTorchvisionEncoder(*encoder, sd);
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("ResNet-34 encoder"));
  EXPECT_THAT(report.status().message(), HasSubstr("layer1.2.conv1.weight"));
}

}  // namespace
}  // namespace fedjoint::common::model
