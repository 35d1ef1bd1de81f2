#include "site_agent/federation/egress_filter.h"

#include <ATen/ATen.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::site_agent {
namespace {

using common::tensors::TensorMap;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

fedjoint::v1::Task FedBnTask() {
  fedjoint::v1::Task task;
  for (const char* joint : {"ankle", "knee"}) task.mutable_model()->add_joints()->set_name(joint);
  for (auto [pattern, scope] :
       {std::pair{"*.norms.*", "site"}, {"heads.*", "domain"}, {"*", "global"}}) {
    auto* rule = task.add_scopes();
    rule->set_pattern(pattern);
    rule->set_scope(scope);
  }
  return task;
}

TensorMap TwoJointModel() {
  return {{"encoder.conv1.weight", at::ones({2, 2})},
          {"encoder.bn1.norms.knee.weight", at::ones({2})},
          {"encoder.bn1.norms.knee.num_batches_tracked", at::zeros({}, at::kLong)},
          {"heads.knee.weight", at::ones({3, 2})},
          {"heads.ankle.weight", at::ones({3, 2})}};
}

std::vector<std::string> Names(const TensorMap& m) {
  std::vector<std::string> names;
  for (const auto& [name, t] : m) names.push_back(name);
  return names;
}

TEST(EgressFilterTest, OnlyGlobalAndOwnJointTensorsLeave) {
  auto filter = EgressFilter::ForTask(FedBnTask(), {"knee"});
  ASSERT_TRUE(filter.ok()) << filter.status();
  auto split = filter->Split(TwoJointModel());
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_THAT(Names(split->shared), ElementsAre("encoder.conv1.weight", "heads.knee.weight"));
  EXPECT_THAT(Names(split->site), ElementsAre("encoder.bn1.norms.knee.num_batches_tracked",
                                              "encoder.bn1.norms.knee.weight"));
}

TEST(EgressFilterTest, IntegerTensorsStayAndOtherJointsTensorsNeverLeaveUnderACatchAllGlobalRule) {
  fedjoint::v1::Task task = FedBnTask();
  task.clear_scopes();
  auto* all = task.add_scopes();
  all->set_pattern("*");
  all->set_scope("global");
  auto filter = EgressFilter::ForTask(task, {"knee"});
  ASSERT_TRUE(filter.ok());
  auto split = filter->Split(TwoJointModel());
  ASSERT_TRUE(split.ok());
  EXPECT_THAT(Names(split->site), ElementsAre("encoder.bn1.norms.knee.num_batches_tracked"));
  // The ankle head, which this knee site never trained, is not sent.
  EXPECT_THAT(Names(split->shared), ElementsAre("encoder.bn1.norms.knee.weight",
                                                "encoder.conv1.weight", "heads.knee.weight"));
  auto site = filter->SiteScoped(TwoJointModel());
  ASSERT_TRUE(site.ok());
  EXPECT_THAT(Names(*site), ElementsAre("encoder.bn1.norms.knee.num_batches_tracked"));
}

TEST(EgressFilterTest, RefusesWhatItCannotClassifyOrSend) {
  fedjoint::v1::Task task = FedBnTask();
  task.mutable_scopes()->RemoveLast();  // no catch-all
  auto filter = EgressFilter::ForTask(task, {"knee"});
  ASSERT_TRUE(filter.ok());
  EXPECT_THAT(filter->Split(TwoJointModel()).status().message(),
              HasSubstr("'encoder.conv1.weight' matches no scope rule"));

  auto full = EgressFilter::ForTask(FedBnTask(), {"knee"});
  ASSERT_TRUE(full.ok());
  TensorMap doubles = {{"encoder.conv1.weight", at::ones({2}, at::kDouble)}};
  EXPECT_THAT(full->Split(doubles).status().message(), HasSubstr("expected float32"));

  fedjoint::v1::Task bar = FedBnTask();
  bar.mutable_scopes(0)->set_pattern("*norm*|*bn*");
  EXPECT_THAT(EgressFilter::ForTask(bar, {"knee"}).status().message(),
              HasSubstr("'|' is not part of the pattern grammar"));
}

}  // namespace
}  // namespace fedjoint::site_agent
