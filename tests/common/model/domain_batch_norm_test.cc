#include "common/model/domain_batch_norm.h"

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int64_t> ToVector(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(GroupByDomainTest, SortedBatchNeedsNoPermutation) {
  DomainGrouping g = GroupByDomain(torch::tensor({0, 0, 2, 2, 2}, torch::kLong), 3);
  EXPECT_THAT(g.sizes, ElementsAre(2, 0, 3));
  EXPECT_FALSE(g.order.defined());
}

TEST(GroupByDomainTest, MixedBatchIsStablyGrouped) {
  DomainGrouping g = GroupByDomain(torch::tensor({2, 0, 1, 0, 2}, torch::kLong), 3);
  EXPECT_THAT(g.sizes, ElementsAre(2, 1, 2));
  EXPECT_THAT(ToVector(g.order), ElementsAre(1, 3, 2, 0, 4));
  EXPECT_THAT(ToVector(g.inverse), ElementsAre(3, 0, 2, 1, 4));
}

TEST(GroupByDomainTest, OutOfRangeIdIsNamed) {
  try {
    GroupByDomain(torch::tensor({0, 3}, torch::kLong), 3);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("domain id 3 of sample 1 is out of range [0, 3)"));
  }
}

TEST(DomainBatchNormTest, NamesRevealDomain) {
  DomainBatchNorm2d norm(DomainBatchNorm2dOptions(4, {"ankle", "knee"}));
  std::vector<std::string> names;
  for (const auto& item : norm->named_parameters()) names.push_back(item.key());
  for (const auto& item : norm->named_buffers()) names.push_back(item.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "norms.ankle.weight", "norms.ankle.bias", "norms.knee.weight",
                         "norms.knee.bias", "norms.ankle.running_mean", "norms.ankle.running_var",
                         "norms.ankle.num_batches_tracked", "norms.knee.running_mean",
                         "norms.knee.running_var", "norms.knee.num_batches_tracked"));
}

TEST(DomainBatchNormTest, EvalUsesEachSamplesOwnDomainStatistics) {
  DomainBatchNorm2d norm(DomainBatchNorm2dOptions(2, {"a", "b", "c"}));
  {
    torch::NoGradGuard no_grad;
    for (int64_t d = 0; d < 3; ++d) {
      norm->norm(d).running_mean.fill_(static_cast<double>(d));
      norm->norm(d).running_var.fill_(4.0);
      norm->norm(d).weight.fill_(static_cast<double>(d + 1));
      norm->norm(d).bias.fill_(10.0 * d);
    }
  }
  norm->eval();
  torch::manual_seed(0);
  at::Tensor x = torch::randn({5, 2, 3, 3});
  at::Tensor domains = torch::tensor({2, 0, 1, 0, 2}, torch::kLong);
  at::Tensor y = norm->forward(x, domains);
  for (int64_t i = 0; i < 5; ++i) {
    const double d = static_cast<double>(domains[i].item<int64_t>());
    at::Tensor expected = (x[i] - d) / std::sqrt(4.0 + 1e-5) * (d + 1) + 10.0 * d;
    EXPECT_TRUE(torch::allclose(y[i], expected, 1e-5, 1e-5)) << "sample " << i;
  }
}

TEST(DomainBatchNormTest, TrainNormalizesEachGroupWithItsOwnBatchStatistics) {
  DomainBatchNorm2d norm(DomainBatchNorm2dOptions(3, {"a", "b", "c"}));
  norm->train();
  torch::manual_seed(1);
  // Domain 1 is absent; domain 2's samples are shifted far away from domain 0's.
  at::Tensor domains = torch::tensor({2, 0, 0, 2, 2, 0}, torch::kLong);
  at::Tensor x = torch::randn({6, 3, 4, 4}) + 5.0 * domains.to(torch::kFloat).view({6, 1, 1, 1});
  at::Tensor y = norm->forward(x, domains);
  for (int64_t d : {0, 2}) {
    at::Tensor group = y.index_select(0, torch::nonzero(domains == d).squeeze(1));
    at::Tensor mean = group.mean({0, 2, 3});
    at::Tensor var = group.var({0, 2, 3}, /*unbiased=*/false);
    EXPECT_TRUE(torch::allclose(mean, torch::zeros({3}), 1e-5, 1e-5)) << "domain " << d;
    EXPECT_TRUE(torch::allclose(var, torch::ones({3}), 1e-3, 1e-3)) << "domain " << d;
  }
  // Running statistics moved for the domains present only.
  EXPECT_EQ(norm->norm(0).num_batches_tracked.item<int64_t>(), 1);
  EXPECT_EQ(norm->norm(1).num_batches_tracked.item<int64_t>(), 0);
  EXPECT_EQ(norm->norm(2).num_batches_tracked.item<int64_t>(), 1);
  EXPECT_TRUE(torch::equal(norm->norm(1).running_mean, torch::zeros({3})));
  EXPECT_GT(norm->norm(2).running_mean.min().item<float>(),
            norm->norm(0).running_mean.max().item<float>());
}

TEST(DomainBatchNormTest, GroupedSizesMustCoverTheBatch) {
  DomainBatchNorm2d norm(DomainBatchNorm2dOptions(2, {"a", "b"}));
  at::Tensor x = torch::randn({4, 2, 2, 2});
  const std::vector<int64_t> sizes = {1, 2};
  EXPECT_THROW(norm->forward_grouped(x, sizes), c10::Error);
  EXPECT_THROW(DomainBatchNorm2d(DomainBatchNorm2dOptions(2, {"a", "a"})), c10::Error);
}

}  // namespace
}  // namespace fedjoint::common::model
