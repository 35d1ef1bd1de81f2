#include "common/model/model_factory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/config/model_config_json.h"

namespace fedjoint::common::model {
namespace {

using ::testing::HasSubstr;

v1::ModelConfig KneeUNet() {
  v1::ModelConfig config;
  config.set_architecture("unet_resnet");
  config.set_encoder_depth(18);
  config.set_width_multiplier(0.125);
  config.set_input_size(64);
  config.set_variant("domain");
  config.set_slice_axis("auto");
  auto* joint = config.add_joints();
  joint->set_name("knee");
  joint->add_structures("femur");
  joint->add_structures("tibia");
  return config;
}

TEST(ModelFactoryTest, ConfigTravelsAsJson) {
  const v1::ModelConfig config = KneeUNet();
  auto back = config::ModelConfigFromJson(config::ModelConfigToJson(config));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), config.SerializeAsString());
  EXPECT_FALSE(config::ModelConfigFromJson("{\"joints\": 3}").ok());
}

TEST(ModelFactoryTest, AutoEncoderShapesAreReadFromWeights) {
  ShapeAutoEncoder ae(ShapeAutoEncoderOptions(5).base_channels(4).levels(3).code_channels(6));
  tensors::TensorMap weights;
  for (const auto& p : ae->named_parameters()) weights[p.key()] = p.value();
  auto options = ShapeAutoEncoderOptionsFromWeights(weights);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->in_channels(), 5);
  EXPECT_EQ(options->base_channels(), 4);
  EXPECT_EQ(options->levels(), 3);
  EXPECT_EQ(options->code_channels(), 6);
  weights.erase("decoder.0.weight");
  EXPECT_THAT(ShapeAutoEncoderOptionsFromWeights(weights).status().message(),
              HasSubstr("not a shape auto-encoder"));
}

TEST(ModelFactoryTest, ValidationNamesTheField) {
  v1::ModelConfig config = KneeUNet();
  EXPECT_TRUE(ValidateModelConfig(config).ok());
  config.set_slice_axis("oblique");
  EXPECT_THAT(ValidateModelConfig(config).message(), HasSubstr("slice_axis"));
  config = KneeUNet();
  config.set_architecture("vit");
  EXPECT_THAT(ValidateModelConfig(config).message(), HasSubstr("ModelConfig.architecture"));
  config = KneeUNet();
  config.set_variant("mixed");
  EXPECT_THAT(ValidateModelConfig(config).message(), HasSubstr("ModelConfig.variant"));
}

TEST(ModelFactoryTest, SameConfigAndSeedGiveIdenticalWeights) {
  auto a = BuildUNet(KneeUNet(), 7);
  auto b = BuildUNet(KneeUNet(), 7);
  auto c = BuildUNet(KneeUNet(), 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  const auto pa = (*a)->named_parameters();
  const auto pb = (*b)->named_parameters();
  const auto pc = (*c)->named_parameters();
  bool any_differs = false;
  for (const auto& p : pa) {
    EXPECT_TRUE(p.value().equal(pb[p.key()])) << p.key();
    any_differs = any_differs || !p.value().equal(pc[p.key()]);
  }
  EXPECT_TRUE(any_differs);
}

}  // namespace
}  // namespace fedjoint::common::model
