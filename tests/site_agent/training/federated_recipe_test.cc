// The federated recipe's local-training options, on the tiny knee site: optimizer state kept
// across rounds, the received model validated before training, FedProx's proximal term and
// personalization of the final model.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/base/atomic_file.h"
#include "common/data/manifest.h"
#include "common/model/model_factory.h"
#include "site_agent/inference/weights.h"
#include "site_agent/training/federated_trainer.h"
#include "site_agent/training/segmentation_trainer.h"
#include "site_agent/training/training_data.h"
#include "tests/site_agent/training/test_data.h"

namespace fedjoint::site_agent::training {
namespace {

namespace fs = std::filesystem;
using common::tensors::TensorMap;
using ::testing::ElementsAre;

class FederatedRecipeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(test_util::TempDir("recipe"));
    manifest_ = new fs::path(test_util::WriteTinySite(*root_ / "knee", "knee", 4));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
    delete manifest_;
  }

  static std::unique_ptr<FederatedTrainer> Trainer(const std::string& state) {
    FederatedTrainerOptions options;
    options.manifest = *manifest_;
    options.state_dir = state.empty() ? fs::path() : *root_ / state;
    options.threads = 1;
    options.loader_threads = 1;
    options.seed = 5;
    auto trainer = FederatedTrainer::Create(options);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    return std::move(*trainer);
  }

  static fedjoint::v1::Task Task(int64_t round, bool keep_state) {
    fedjoint::v1::Task task;
    task.set_kind(fedjoint::v1::Task::TRAIN);
    task.set_phase("segmentation");
    task.set_round(round);
    task.set_phase_round(round);
    task.set_phase_rounds(3);
    *task.mutable_model() = test_util::TinyModel({"knee"});
    *task.mutable_local() = test_util::TinyTraining(2);
    task.mutable_local()->mutable_optimizer()->set_keep_state_across_rounds(keep_state);
    for (auto [pattern, scope] : {std::pair{"*.norms.*", "site"}, {"*", "global"}}) {
      auto* rule = task.add_scopes();
      rule->set_pattern(pattern);
      rule->set_scope(scope);
    }
    return task;
  }

  static TensorMap InitialWeights() {
    auto net = common::model::BuildUNet(test_util::TinyModel({"knee"}), 3);
    EXPECT_TRUE(net.ok());
    return inference::StateDict(**net);
  }

  static TrainResult Round(FederatedTrainer& trainer, const fedjoint::v1::Task& task,
                           const TensorMap& weights) {
    TrainRequest request;
    request.task = task;
    request.weights = weights;
    auto result = trainer.Train(request);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? std::move(*result) : TrainResult{};
  }

  static std::vector<std::string> Files(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  static double Distance(const TensorMap& a, const TensorMap& b) {
    double sum = 0;
    for (const auto& [name, t] : a) {
      if (!at::isFloatingType(t.scalar_type()) || name.find("running_") != std::string::npos) {
        continue;
      }
      sum += (t - b.at(name)).pow(2).sum().item<double>();
    }
    return std::sqrt(sum);
  }

  static fs::path* root_;
  static fs::path* manifest_;
};
fs::path* FederatedRecipeTest::root_ = nullptr;
fs::path* FederatedRecipeTest::manifest_ = nullptr;

TEST_F(FederatedRecipeTest, OptimizerStateIsKeptAcrossRoundsAndUsedByTheNext) {
  const TensorMap start = InitialWeights();
  auto kept = Trainer("kept");
  auto fresh = Trainer("fresh");
  auto fresh_again = Trainer("fresh-again");
  // The same round 1 everywhere; round 2 from the same weights.
  for (auto* trainer : {kept.get(), fresh.get(), fresh_again.get()}) {
    const bool keep = trainer == kept.get();
    Round(*trainer, Task(1, keep), start);
  }
  const TrainResult with_state = Round(*kept, Task(2, true), start);
  const TrainResult without = Round(*fresh, Task(2, false), start);
  const TrainResult without_again = Round(*fresh_again, Task(2, false), start);
  // Training is deterministic, so only the restored moments tell the two apart.
  EXPECT_EQ(Distance(without.weights, without_again.weights), 0.0);
  EXPECT_GT(Distance(with_state.weights, without.weights), 0.0);
  EXPECT_FALSE(fs::exists(*root_ / "fresh" / "optimizer"));

  Round(*kept, Task(3, true), start);
  // The two newest are kept (a retried round 3 starts from round 2's state).
  EXPECT_THAT(Files(*root_ / "kept" / "optimizer"),
              ElementsAre("segmentation.round-2.pt", "segmentation.round-3.pt"));
}

TEST_F(FederatedRecipeTest, TheReceivedModelIsValidatedBeforeLocalTraining) {
  auto trainer = Trainer("received");
  const TrainResult result = Round(*trainer, Task(1, false), InitialWeights());
  ASSERT_TRUE(result.metrics.contains("received_val_dice_mean"));
  ASSERT_TRUE(result.metrics.contains("val_dice_mean"));
  EXPECT_GE(result.metrics.at("received_val_dice_mean"), 0.0);
  EXPECT_LE(result.metrics.at("received_val_dice_mean"), 1.0);
  // The site's round log carries both.
  auto log = common::base::ReadSmallFile(*root_ / "received" / "metrics.jsonl", 1 << 20);
  ASSERT_TRUE(log.ok());
  EXPECT_THAT(*log, ::testing::HasSubstr("\"received_val_dice_mean\""));
}

TEST_F(FederatedRecipeTest, TheProximalTermKeepsTheLocalModelNearItsStart) {
  auto manifest = common::data::LoadManifest(*manifest_);
  ASSERT_TRUE(manifest.ok());
  const v1::ModelConfig model = test_util::TinyModel({"knee"});
  auto data = LoadTrainingData(*manifest, model, 0, 7);
  ASSERT_TRUE(data.ok()) << data.status();
  const TensorMap start = InitialWeights();
  auto distance_after = [&](double mu) {
    TrainerOptions options;
    options.model = model;
    options.training = test_util::TinyTraining(4);
    options.training.set_validation_fraction(0);
    options.training.mutable_optimizer()->set_name("sgd");
    options.training.mutable_optimizer()->set_momentum(0);
    options.training.mutable_optimizer()->set_weight_decay(0);
    options.training.mutable_optimizer()->set_learning_rate(0.05);
    options.training.mutable_optimizer()->set_grad_clip_norm(0);
    options.training.mutable_loss()->set_proximal_mu(mu);
    options.threads = 1;
    options.loader_threads = 1;
    options.show_progress = false;
    auto trainer = SegmentationTrainer::Create(options, *data);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    EXPECT_TRUE((*trainer)->LoadWeights(start).ok());
    auto summary = (*trainer)->Train();
    EXPECT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->metrics.contains("proximal"), mu > 0);
    return Distance((*trainer)->Weights(), start);
  };
  const double free = distance_after(0);
  const double pulled = distance_after(10);
  EXPECT_GT(free, 0);
  EXPECT_LT(pulled, free);
}

TEST_F(FederatedRecipeTest, PersonalizationAdaptsTheDecoderSideAndLeavesTheEncoderConvolutions) {
  auto trainer = Trainer("personal");
  const v1::ModelConfig model = test_util::TinyModel({"knee"});
  const TensorMap start = InitialWeights();
  v1::PersonalizationConfig config;
  config.set_steps(3);
  config.set_learning_rate(1e-2);
  config.set_parameters("decoder");
  auto decoder_only = trainer->Personalize(model, start, config);
  ASSERT_TRUE(decoder_only.ok()) << decoder_only.status();
  EXPECT_TRUE(
      torch::equal(decoder_only->at("encoder.conv1.weight"), start.at("encoder.conv1.weight")));
  EXPECT_TRUE(torch::equal(decoder_only->at("encoder.layer4.1.conv2.weight"),
                           start.at("encoder.layer4.1.conv2.weight")));
  EXPECT_FALSE(torch::equal(decoder_only->at("decoder.blocks.0.conv1.weight"),
                            start.at("decoder.blocks.0.conv1.weight")));
  EXPECT_FALSE(torch::equal(decoder_only->at("heads.knee.weight"), start.at("heads.knee.weight")));
  EXPECT_FALSE(torch::equal(decoder_only->at("encoder.bn1.norms.knee.weight"),
                            start.at("encoder.bn1.norms.knee.weight")));

  config.set_parameters("all");
  auto everything = trainer->Personalize(model, start, config);
  ASSERT_TRUE(everything.ok()) << everything.status();
  EXPECT_FALSE(
      torch::equal(everything->at("encoder.conv1.weight"), start.at("encoder.conv1.weight")));

  config.set_steps(0);
  EXPECT_THAT(trainer->Personalize(model, start, config).status().message(),
              ::testing::HasSubstr("personalization.steps is 0"));
}

}  // namespace
}  // namespace fedjoint::site_agent::training
