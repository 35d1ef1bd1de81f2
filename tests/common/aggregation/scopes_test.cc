#include "common/aggregation/scopes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::aggregation {
namespace {

using ::testing::HasSubstr;

TEST(GlobMatchTest, StarsAndQuestionMarks) {
  EXPECT_TRUE(GlobMatch("*", "encoder.conv1.weight"));
  EXPECT_TRUE(GlobMatch("heads.*", "heads.knee.weight"));
  EXPECT_FALSE(GlobMatch("heads.*", "encoder.heads.knee"));
  EXPECT_TRUE(GlobMatch("*.bn?.*", "encoder.layer1.0.bn1.knee.weight"));
  EXPECT_TRUE(GlobMatch("*norm*", "decoder.up1.norm.ankle.running_mean"));
  EXPECT_FALSE(GlobMatch("*norm*", "decoder.up1.conv.weight"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatch("", ""));
  EXPECT_FALSE(GlobMatch("", "x"));
}

TEST(ResolveScopeTest, FirstMatchingRuleWins) {
  std::vector<ScopeRule> rules = {
      {"*norm*", Scope::kSite}, {"heads.*", Scope::kDomain}, {"*", Scope::kGlobal}};
  std::vector<std::string> joints = {"ankle", "knee", "shoulder"};
  EXPECT_EQ(*ResolveScope("encoder.layer1.0.norm1.knee.weight", rules, joints),
            (ResolvedScope{Scope::kSite, ""}));
  EXPECT_EQ(*ResolveScope("heads.knee.weight", rules, joints),
            (ResolvedScope{Scope::kDomain, "knee"}));
  EXPECT_EQ(*ResolveScope("encoder.conv1.weight", rules, joints),
            (ResolvedScope{Scope::kGlobal, ""}));
  EXPECT_EQ(DescribeScope(*ResolveScope("heads.shoulder.bias", rules, joints)), "domain:shoulder");
}

TEST(ResolveScopeTest, AJointsOwnTensorsAreNeverGlobal) {
  // FedAvg of "every tensor": heads and normalization of a joint still only average over the
  // sites holding it (a site without the joint would send its untrained copy).
  std::vector<ScopeRule> everything = {{"*", Scope::kGlobal}};
  std::vector<std::string> joints = {"ankle", "knee"};
  EXPECT_EQ(*ResolveScope("heads.knee.weight", everything, joints),
            (ResolvedScope{Scope::kDomain, "knee"}));
  EXPECT_EQ(*ResolveScope("decoder.blocks.0.bn1.norms.ankle.running_mean", everything, joints),
            (ResolvedScope{Scope::kDomain, "ankle"}));
  EXPECT_EQ(*ResolveScope("encoder.conv1.weight", everything, joints),
            (ResolvedScope{Scope::kGlobal, ""}));
  // The shared variant's normalization belongs to no joint: global as written.
  EXPECT_EQ(*ResolveScope("encoder.bn1.norms.shared.weight", everything, joints),
            (ResolvedScope{Scope::kGlobal, ""}));
  // A site rule still keeps them at the site.
  std::vector<ScopeRule> fedbn = {{"*.norms.*", Scope::kSite}, {"*", Scope::kGlobal}};
  EXPECT_EQ(*ResolveScope("encoder.bn1.norms.knee.weight", fedbn, joints),
            (ResolvedScope{Scope::kSite, ""}));
}

TEST(ResolveScopeTest, ErrorsNameTheParameter) {
  std::vector<ScopeRule> rules = {{"heads.*", Scope::kDomain}};
  std::vector<std::string> joints = {"knee"};
  auto no_joint = ResolveScope("heads.hip.weight", rules, joints);
  ASSERT_FALSE(no_joint.ok());
  EXPECT_EQ(no_joint.status().message(),
            "parameter 'heads.hip.weight' matches domain rule 'heads.*' but none of its name "
            "segments is a configured joint");
  auto none = ResolveScope("encoder.conv1.weight", rules, joints);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(), "parameter 'encoder.conv1.weight' matches no scope rule");
}

TEST(ParseScopeTest, KnownAndUnknown) {
  EXPECT_EQ(*ParseScope("site"), Scope::kSite);
  auto bad = ParseScope("everyone");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("unknown scope 'everyone'"));
}

}  // namespace
}  // namespace fedjoint::common::aggregation
