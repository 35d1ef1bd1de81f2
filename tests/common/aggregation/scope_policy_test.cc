#include "common/aggregation/scope_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::aggregation {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::ModelConfig Joints(std::initializer_list<const char*> names) {
  v1::ModelConfig model;
  for (const char* name : names) model.add_joints()->set_name(name);
  return model;
}

google::protobuf::RepeatedPtrField<v1::ScopeRule> Rules(
    std::initializer_list<std::pair<const char*, const char*>> rules) {
  google::protobuf::RepeatedPtrField<v1::ScopeRule> out;
  for (const auto& [pattern, scope] : rules) {
    auto* rule = out.Add();
    rule->set_pattern(pattern);
    rule->set_scope(scope);
  }
  return out;
}

TEST(CheckPatternTest, OnlyStarAndQuestionMarkAreWildcards) {
  EXPECT_TRUE(CheckPattern("*").ok());
  EXPECT_TRUE(CheckPattern("encoder.layer?.*.norms.*").ok());
  EXPECT_TRUE(CheckPattern("decoder.blocks.0.conv_1-x.weight").ok());
  EXPECT_THAT(CheckPattern("*norm*|*bn*").message(), HasSubstr("'|' is not part of the pattern"));
  EXPECT_THAT(CheckPattern("heads.{knee,ankle}").message(), HasSubstr("character '{'"));
  EXPECT_THAT(CheckPattern("a b").message(), HasSubstr("character ' '"));
  EXPECT_THAT(CheckPattern("[ab]*").message(), HasSubstr("character '['"));
  EXPECT_THAT(CheckPattern("").message(), HasSubstr("empty"));
}

TEST(ScopePolicyTest, BuiltOnceFromTheProtoAndResolvesFirstMatch) {
  auto policy =
      ScopePolicy::FromProto(Rules({{"*.norms.*", "site"}, {"heads.*", "domain"}, {"*", "global"}}),
                             Joints({"ankle", "knee"}));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(*policy->Resolve("encoder.bn1.norms.knee.weight"), (ResolvedScope{Scope::kSite, ""}));
  EXPECT_EQ(*policy->Resolve("heads.ankle.bias"), (ResolvedScope{Scope::kDomain, "ankle"}));
  EXPECT_EQ(*policy->Resolve("encoder.conv1.weight"), (ResolvedScope{Scope::kGlobal, ""}));
  EXPECT_THAT(policy->Resolve("heads.hip.weight").status().message(),
              HasSubstr("none of its name segments is a configured joint"));
  EXPECT_THAT(policy->joints(), ElementsAre("ankle", "knee"));
}

TEST(ScopePolicyTest, RefusesOtherGrammarsAndUnknownScopesNamingTheRule) {
  auto bar =
      ScopePolicy::FromProto(Rules({{"*norm*|*bn*", "site"}, {"*", "global"}}), Joints({"knee"}));
  ASSERT_FALSE(bar.ok());
  EXPECT_THAT(bar.status().message(), HasSubstr("scope rule 0: '*norm*|*bn*'"));
  auto scope = ScopePolicy::FromProto(Rules({{"*", "everyone"}}), Joints({"knee"}));
  ASSERT_FALSE(scope.ok());
  EXPECT_THAT(scope.status().message(), HasSubstr("scope rule 0: unknown scope 'everyone'"));
}

TEST(ScopePolicyTest, UnusedRulesAreThoseThatDecideNothing) {
  auto policy = ScopePolicy::FromProto(
      Rules({{"*norm*", "site"}, {"*.norms.*", "site"}, {"heads.*", "domain"}, {"*", "global"}}),
      Joints({"knee"}));
  ASSERT_TRUE(policy.ok());
  const std::vector<std::string> unet = {"encoder.conv1.weight", "encoder.bn1.norms.knee.weight",
                                         "heads.knee.weight"};
  // Rule 1 matches the norm tensor, but rule 0 always wins first: it decides nothing.
  EXPECT_THAT(policy->UnusedRules(unet), ElementsAre(1));
  const std::vector<std::string> autoencoder = {"encoder.0.weight", "decoder.0.weight"};
  EXPECT_THAT(policy->UnusedRules(autoencoder), ElementsAre(0, 1, 2));
}

}  // namespace
}  // namespace fedjoint::common::aggregation
