#include "common/model/unet.h"

#include <map>
#include <set>

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/aggregation/scopes.h"
#include "common/model/domain_batch_norm.h"
#include "common/model/resnet_encoder.h"
#include "common/model/tensor_naming.h"

namespace fedjoint::common::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

UNetOptions Small(int64_t depth = 18, Variant variant = Variant::kDomain) {
  return UNetOptions().depth(depth).width_multiplier(0.25).variant(variant);
}

int64_t CountParameters(const torch::nn::Module& module, const std::string& prefix = "") {
  int64_t count = 0;
  for (const auto& item : module.named_parameters()) {
    if (item.key().starts_with(prefix)) count += item.value().numel();
  }
  return count;
}

std::map<std::string, at::Tensor> Snapshot(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> copy;
  for (const auto& item : module.named_parameters()) copy[item.key()] = item.value().clone();
  for (const auto& item : module.named_buffers()) copy[item.key()] = item.value().clone();
  return copy;
}

std::vector<int64_t> ToVector(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

class UNetShapeTest : public ::testing::TestWithParam<std::tuple<int64_t, Variant>> {};

TEST_P(UNetShapeTest, MixedBatchOutputs) {
  const auto [depth, variant] = GetParam();
  torch::manual_seed(0);
  UNet model(Small(depth, variant));
  at::Tensor x = torch::randn({5, 1, 64, 64});
  at::Tensor joints = torch::tensor({1, 0, 2, 1, 0}, torch::kLong);
  UNetOutput out = model->forward(x, joints);

  ASSERT_EQ(out.logits.size(), 3u);
  const std::vector<int64_t> counts = {2, 2, 1};
  for (int64_t j = 0; j < 3; ++j) {
    const int64_t channels =
        variant == Variant::kShared ? 10 : model->options().joints()[j].NumClasses();
    EXPECT_EQ(model->OutputChannels(j), channels);
    EXPECT_EQ(out.logits[j].sizes(), c10::IntArrayRef({counts[j], channels, 64, 64}))
        << "joint " << j;
  }
  EXPECT_THAT(ToVector(out.sample_indices[0]), ElementsAre(1, 4));
  EXPECT_THAT(ToVector(out.sample_indices[1]), ElementsAre(0, 3));
  EXPECT_THAT(ToVector(out.sample_indices[2]), ElementsAre(2));
  ASSERT_EQ(out.embeddings.size(), 3u);
  for (const at::Tensor& z : out.embeddings) {
    EXPECT_EQ(z.sizes(), c10::IntArrayRef({5, 128}));
    EXPECT_TRUE(torch::allclose(z.norm(2, 1), torch::ones({5}), 1e-5, 1e-5));
  }
}

INSTANTIATE_TEST_SUITE_P(DepthsAndVariants, UNetShapeTest,
                         ::testing::Combine(::testing::Values(18, 50),
                                            ::testing::Values(Variant::kDomain, Variant::kShared)));

TEST(UNetTest, MixedBatchMatchesPerJointBatchesInEval) {
  torch::manual_seed(1);
  UNet model(Small());
  model->eval();
  torch::NoGradGuard no_grad;
  at::Tensor x = torch::randn({5, 1, 64, 64});
  at::Tensor joints = torch::tensor({2, 0, 1, 0, 2}, torch::kLong);
  UNetOutput mixed = model->forward(x, joints);
  for (int64_t j = 0; j < 3; ++j) {
    at::Tensor idx = mixed.sample_indices[j];
    UNetOutput alone = model->forward(x.index_select(0, idx), j);
    EXPECT_TRUE(torch::allclose(mixed.logits[j], alone.logits[j], 1e-4, 1e-4)) << "joint " << j;
    for (std::size_t s = 0; s < mixed.embeddings.size(); ++s) {
      EXPECT_TRUE(torch::allclose(mixed.embeddings[s].index_select(0, idx), alone.embeddings[s],
                                  1e-4, 1e-4))
          << "joint " << j << " stage " << s;
    }
    // Absent joints: undefined logits, empty indices.
    for (int64_t k = 0; k < 3; ++k) {
      if (k == j) continue;
      EXPECT_FALSE(alone.logits[k].defined());
      EXPECT_EQ(alone.sample_indices[k].numel(), 0);
    }
  }
}

TEST(UNetTest, TrainingOneDomainLeavesOtherDomainsNormsAndHeadsUnchanged) {
  torch::manual_seed(2);
  UNet model(Small());
  model->train();
  const auto before = Snapshot(*model);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  for (int step = 0; step < 3; ++step) {
    at::Tensor x = torch::randn({4, 1, 64, 64});
    at::Tensor target = torch::randint(0, 4, {4, 64, 64}, torch::kLong);
    optimizer.zero_grad();
    UNetOutput out = model->forward(x, /*joint=*/0);  // ankle only
    at::Tensor loss = torch::nn::functional::cross_entropy(out.logits[0], target);
    for (const at::Tensor& z : out.embeddings) loss = loss + (z[0] * z[1]).sum();
    loss.backward();
    optimizer.step();
  }
  const auto after = Snapshot(*model);
  int changed_ankle = 0, other_domain = 0;
  for (const auto& [name, value] : before) {
    const bool same = torch::equal(value, after.at(name));
    const auto domain = DomainOf(name);
    if (domain == "knee" || domain == "shoulder") {
      ++other_domain;
      EXPECT_TRUE(same) << name << " belongs to a domain that was not trained";
    } else if (domain == "ankle") {
      changed_ankle += same ? 0 : 1;
    }
  }
  // ankle's norms: weight, bias, running_mean, running_var, num_batches_tracked all move.
  EXPECT_GT(changed_ankle, 0);
  EXPECT_TRUE(torch::equal(after.at("encoder.bn1.norms.ankle.num_batches_tracked"),
                           torch::tensor(3, torch::kLong)));
  EXPECT_FALSE(torch::equal(before.at("encoder.bn1.norms.ankle.running_mean"),
                            after.at("encoder.bn1.norms.ankle.running_mean")));
  EXPECT_FALSE(torch::equal(before.at("decoder.blocks.4.bn2.norms.ankle.weight"),
                            after.at("decoder.blocks.4.bn2.norms.ankle.weight")));
  EXPECT_FALSE(torch::equal(before.at("heads.ankle.weight"), after.at("heads.ankle.weight")));
  EXPECT_FALSE(torch::equal(before.at("encoder.layer1.0.conv1.weight"),
                            after.at("encoder.layer1.0.conv1.weight")));
  EXPECT_GT(other_domain, 100);
}

TEST(UNetTest, DefaultModelScopesByRuleTable) {
  UNet model{
      UNetOptions{}};  // default options: depth 18, width 0.5, domain variant, ankle/knee/shoulder
  namespace agg = common::aggregation;
  const std::vector<agg::ScopeRule> rules = {{"*.norms.*", agg::Scope::kSite},
                                             {"heads.*", agg::Scope::kDomain},
                                             {"*", agg::Scope::kGlobal}};
  const std::vector<std::string> joints = {"ankle", "knee", "shoulder"};
  // Expected scopes derived from module types, independently of the names.
  std::map<std::string, std::string> expected;
  for (const auto& item : model->named_modules()) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    std::string scope = "global";
    if (item.value()->as<torch::nn::BatchNorm2dImpl>()) scope = "site";
    if (item.key().starts_with("heads.")) scope = "domain";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      expected[prefix + p.key()] = scope;
    }
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false)) {
      expected[prefix + b.key()] = scope;
    }
  }
  std::map<std::string, int> per_scope;
  std::set<std::string> domains_seen;
  for (const auto& [name, scope] : expected) {
    auto resolved = agg::ResolveScope(name, rules, joints);
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    EXPECT_EQ(agg::ScopeName(resolved->scope), scope) << name;
    ++per_scope[scope];
    if (scope != "global") {
      auto domain = DomainOf(name);
      ASSERT_TRUE(domain.has_value()) << name;
      EXPECT_TRUE(model->JointIndex(*domain).has_value()) << name;
      domains_seen.insert(*domain);
    } else {
      EXPECT_EQ(DomainOf(name), std::nullopt) << name;
    }
  }
  EXPECT_THAT(domains_seen, ElementsAre("ankle", "knee", "shoulder"));
  EXPECT_EQ(per_scope["domain"], 6);  // 3 heads x (weight, bias)
  EXPECT_GT(per_scope["site"], 0);
  EXPECT_GT(per_scope["global"], 0);
  EXPECT_EQ(expected.size(), model->named_parameters().size() + model->named_buffers().size());

  for (const char* name :
       {"encoder.conv1.weight", "encoder.bn1.norms.knee.weight", "encoder.layer1.0.conv1.weight",
        "encoder.layer2.0.downsample.0.weight",
        "encoder.layer2.0.downsample.1.norms.ankle.running_var", "decoder.blocks.0.conv1.weight",
        "decoder.blocks.4.bn2.norms.shoulder.bias", "heads.knee.weight", "heads.knee.bias",
        "projections.layer2.fc1.weight", "projections.layer4.fc2.bias"}) {
    EXPECT_TRUE(expected.count(name)) << "missing " << name;
  }
}

TEST(UNetTest, SharedVariantHeadIsGlobalAndNormIsShared) {
  UNet model(Small(18, Variant::kShared));
  namespace agg = common::aggregation;
  const std::vector<agg::ScopeRule> rules = {{"*.norms.*", agg::Scope::kSite},
                                             {"heads.*", agg::Scope::kDomain},
                                             {"*", agg::Scope::kGlobal}};
  auto params = model->named_parameters();
  ASSERT_TRUE(params.contains("head.weight"));
  EXPECT_EQ(params["head.weight"].size(0), 10);
  EXPECT_EQ(agg::ResolveScope("head.weight", rules, std::vector<std::string>{})->scope,
            agg::Scope::kGlobal);
  EXPECT_TRUE(params.contains("encoder.bn1.norms.shared.weight"));
  EXPECT_FALSE(params.contains("encoder.bn1.norms.knee.weight"));
}

TEST(UNetTest, EncoderParameterCountsMatchTorchvision) {
  // torchvision resnet18/34/50 parameter counts minus fc (512*1000+1000, 2048*1000+1000).
  UNet model(UNetOptions().width_multiplier(1.0).in_channels(3).variant(Variant::kShared));
  EXPECT_EQ(CountParameters(*model, "encoder."), 11'689'512 - 513'000);
  EXPECT_EQ(CountParameters(*ResNetEncoder(ResNetEncoderOptions().depth(34).in_channels(3))),
            21'797'672 - 513'000);
  EXPECT_EQ(CountParameters(*ResNetEncoder(ResNetEncoderOptions().depth(50).in_channels(3))),
            25'557'032 - 2'049'000);
  // Domain variant: each extra domain adds one set of norm affine params (4800 channels x 2).
  ResNetEncoder domain(ResNetEncoderOptions().in_channels(3).domains({"a", "b", "c"}));
  EXPECT_EQ(CountParameters(*domain), 11'176'512 + 2 * 2 * 4800);
  // Bottleneck layout names.
  auto names =
      ResNetEncoder(ResNetEncoderOptions().depth(50).width_multiplier(0.25))->named_parameters();
  EXPECT_TRUE(names.contains("layer1.0.conv3.weight"));
  EXPECT_TRUE(names.contains("layer1.0.downsample.0.weight"));
  EXPECT_EQ(names["layer4.2.conv3.weight"].size(0), 512);  // 128 * 4
}

TEST(UNetTest, GradientsAreFiniteAndReachEveryParameter) {
  torch::manual_seed(3);
  UNet model(Small());
  model->train();
  at::Tensor x = torch::randn({6, 1, 64, 64});
  at::Tensor joints = torch::tensor({0, 1, 2, 2, 1, 0}, torch::kLong);
  UNetOutput out = model->forward(x, joints);
  at::Tensor loss = torch::zeros({});
  for (int64_t j = 0; j < 3; ++j) {
    const at::Tensor& logits = out.logits[j];
    at::Tensor target = torch::randint(0, logits.size(1), {logits.size(0), 64, 64}, torch::kLong);
    loss = loss + torch::nn::functional::cross_entropy(logits, target);
  }
  for (const at::Tensor& z : out.embeddings)
    loss = loss + (z[0] * z[5]).sum() - (z[0] * z[1]).sum();
  loss.backward();
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  for (const auto& item : model->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(item.value().grad()).all().item<bool>()) << item.key();
  }
}

TEST(UNetTest, OddInputSizeKeepsResolution) {
  UNet model(Small());
  model->eval();
  torch::NoGradGuard no_grad;
  UNetOutput out = model->forward(torch::randn({2, 1, 70, 50}), 1);
  EXPECT_EQ(out.logits[1].sizes(), c10::IntArrayRef({2, 5, 70, 50}));
}

TEST(UNetTest, InvalidOptionsNameTheField) {
  EXPECT_EQ(MakeUNet(UNetOptions().depth(20)).status().message(),
            "UNetOptions.depth: 20 is not one of 18, 34, 50");
  EXPECT_EQ(MakeUNet(UNetOptions().projection_stages({2, 5})).status().message(),
            "UNetOptions.projection_stages: 5 is not a stage (0 = stem, 1..4 = layer1..4)");
  EXPECT_EQ(MakeUNet(UNetOptions().decoder_channels({64, 32})).status().message(),
            "UNetOptions.decoder_channels: needs 5 widths (deepest first), got 2 [64, 32]");
  EXPECT_EQ(MakeUNet(UNetOptions(std::vector<JointSpec>{{"hip", {}}})).status().message(),
            "UNetOptions.joints[0] 'hip' has no structures");
  try {
    UNet model(UNetOptions().width_multiplier(0.0));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("UNetOptions.width_multiplier: 0 is not in (0, 4]"));
  }
  UNet model(Small().projection_stages({}));
  model->eval();  // a single 32x32 sample has 1x1 maps at layer4: no batch statistics in training
  EXPECT_TRUE(model->forward(torch::randn({1, 1, 32, 32}), 0).embeddings.empty());
  EXPECT_THROW(model->forward(torch::randn({1, 1, 32, 32}), 3), c10::Error);
  EXPECT_THROW(model->forward(torch::randn({1, 2, 32, 32}), 0), c10::Error);
}

TEST(UNetTest, CloneIsDeepAndEqual) {
  torch::manual_seed(4);
  UNet model(Small());
  {
    torch::NoGradGuard no_grad;
    model->named_buffers()["encoder.bn1.norms.knee.running_mean"].fill_(0.5);
  }
  model->eval();
  UNet copy = CloneUNet(*model);
  EXPECT_FALSE(copy->is_training());
  torch::NoGradGuard no_grad;
  at::Tensor x = torch::randn({2, 1, 32, 32});
  EXPECT_TRUE(torch::equal(model->forward(x, 1).logits[1], copy->forward(x, 1).logits[1]));
  copy->named_parameters()["heads.knee.bias"].fill_(7.0);
  EXPECT_FALSE(torch::equal(model->named_parameters()["heads.knee.bias"],
                            copy->named_parameters()["heads.knee.bias"]));
}

}  // namespace
}  // namespace fedjoint::common::model
