#include "common/model/tensor_naming.h"

#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/model/joint_spec.h"

namespace fedjoint::common::model {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;

TEST(DomainOfTest, HeadsAndNorms) {
  EXPECT_THAT(DomainOf("heads.knee.weight"), Optional(std::string("knee")));
  EXPECT_THAT(DomainOf("encoder.layer2.0.downsample.1.norms.ankle.running_var"),
              Optional(std::string("ankle")));
  EXPECT_THAT(DomainOf("decoder.blocks.1.bn2.norms.shared.bias"), Optional(std::string("shared")));
  EXPECT_EQ(DomainOf("encoder.conv1.weight"), std::nullopt);
  EXPECT_EQ(DomainOf("head.weight"), std::nullopt);
}

TEST(JointSpecTest, ValidationNamesTheField) {
  EXPECT_TRUE(ValidateJoints(DefaultJoints()).ok());
  std::vector<JointSpec> joints = DefaultJoints();
  joints[1].name = "Knee.L";
  EXPECT_EQ(ValidateJoints(joints).message(),
            "joints[1].name 'Knee.L' must match [a-z][a-z0-9_]* (it becomes a segment of tensor "
            "names)");
  joints = DefaultJoints();
  joints[2].name = "ankle";
  EXPECT_EQ(ValidateJoints(joints).message(), "joints[2].name 'ankle' is used by another joint");
  joints = DefaultJoints();
  joints[0].structures.push_back("talus");
  EXPECT_EQ(ValidateJoints(joints).message(),
            "joints[0].structures[3] 'talus' appears twice in 'ankle'");
  joints = {{"shared", {"a"}}};
  EXPECT_FALSE(ValidateJoints(joints).ok());
  EXPECT_FALSE(ValidateJoints({}).ok());
}

TEST(JointSpecTest, SharedHeadLayoutConcatenatesJointStructures) {
  const std::vector<JointSpec> joints = DefaultJoints();  // 3 + 4 + 2 structures
  EXPECT_EQ(SharedHeadChannels(joints), 10);
  EXPECT_THAT(SharedChannelsOfJoint(joints, 0), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(SharedChannelsOfJoint(joints, 1), ElementsAre(0, 4, 5, 6, 7));
  EXPECT_THAT(SharedChannelsOfJoint(joints, 2), ElementsAre(0, 8, 9));
  EXPECT_TRUE(SharedChannelsOfJoint(joints, 3).empty());
  EXPECT_EQ(PaddedShapeChannels(joints), 5);
  EXPECT_THAT(FindJoint(joints, "knee"), Optional(1));
  EXPECT_EQ(FindJoint(joints, "hip"), std::nullopt);
}

}  // namespace
}  // namespace fedjoint::common::model
