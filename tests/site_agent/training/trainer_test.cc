#include <cmath>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/data/manifest.h"
#include "common/model/model_factory.h"
#include "common/model/tensor_naming.h"
#include "site_agent/inference/weights.h"
#include "site_agent/training/federated_trainer.h"
#include "site_agent/training/schedule.h"
#include "site_agent/training/segmentation_trainer.h"
#include "site_agent/training/shape_prior_trainer.h"
#include "site_agent/training/training_data.h"
#include "tests/site_agent/training/test_data.h"

namespace fedjoint::site_agent::training {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(test_util::TempDir("site"));
    knee_manifest_ = new fs::path(test_util::WriteTinySite(*root_ / "knee", "knee", 5));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
    delete knee_manifest_;
  }

  // A federated trainer on the tiny knee site, one training and one loader thread.
  static absl::StatusOr<std::unique_ptr<FederatedTrainer>> KneeFederatedTrainer(uint64_t seed) {
    FederatedTrainerOptions options;
    options.manifest = *knee_manifest_;
    options.threads = 1;
    options.loader_threads = 1;
    options.seed = seed;
    return FederatedTrainer::Create(options);
  }

  static TrainingData KneeData(const v1::ModelConfig& model, double validation_fraction = 0.25) {
    auto manifest = common::data::LoadManifest(*knee_manifest_);
    EXPECT_TRUE(manifest.ok()) << manifest.status();
    auto data = LoadTrainingData(*manifest, model, validation_fraction, 7);
    EXPECT_TRUE(data.ok()) << data.status();
    return *data;
  }

  static TrainerOptions Options(const v1::ModelConfig& model, int steps) {
    TrainerOptions options;
    options.model = model;
    options.training = test_util::TinyTraining(steps);
    options.seed = 11;
    options.threads = 1;
    options.loader_threads = 1;
    options.show_progress = false;
    return options;
  }

  static fs::path* root_;
  static fs::path* knee_manifest_;
};
fs::path* TrainerTest::root_ = nullptr;
fs::path* TrainerTest::knee_manifest_ = nullptr;

TEST(ScheduleTest, WarmupThenCosineOrPoly) {
  v1::OptimizerConfig optimizer;
  optimizer.set_learning_rate(1.0);
  optimizer.set_schedule("cosine");
  optimizer.set_warmup_steps(3);
  EXPECT_DOUBLE_EQ(LearningRateAt(optimizer, 0, 13), 0.25);
  EXPECT_DOUBLE_EQ(LearningRateAt(optimizer, 2, 13), 0.75);
  EXPECT_DOUBLE_EQ(LearningRateAt(optimizer, 3, 13), 1.0);
  EXPECT_NEAR(LearningRateAt(optimizer, 8, 13), 0.5, 1e-12);  // halfway through the cosine
  optimizer.set_schedule("poly");
  optimizer.set_poly_power(2.0);
  optimizer.set_warmup_steps(0);
  EXPECT_NEAR(LearningRateAt(optimizer, 5, 10), 0.25, 1e-12);
  optimizer.set_schedule("constant");
  EXPECT_DOUBLE_EQ(LearningRateAt(optimizer, 9, 10), 1.0);

  // One schedule over 4 rounds of 10 steps: warm-up in the first round only, the last round ends
  // near 0 instead of restarting at the full rate.
  optimizer.set_schedule("cosine");
  optimizer.set_warmup_steps(4);
  EXPECT_DOUBLE_EQ(LearningRateInRound(optimizer, 0, 10, 0, 4), 0.2);
  EXPECT_DOUBLE_EQ(LearningRateInRound(optimizer, 0, 10, 1, 4), LearningRateAt(optimizer, 10, 40));
  EXPECT_LT(LearningRateInRound(optimizer, 0, 10, 1, 4), 1.0);
  EXPECT_GT(LearningRateInRound(optimizer, 0, 10, 1, 4), 0.9);
  EXPECT_LT(LearningRateInRound(optimizer, 9, 10, 3, 4), 0.01);
  EXPECT_DOUBLE_EQ(LearningRateInRound(optimizer, 0, 10, 3, 0), 0.2);  // no rounds: per run

  v1::LocalTrainingConfig training;
  training.set_epochs(3);
  EXPECT_EQ(MakeBudget(training, 7)->total_steps, 21);
  training.set_steps(5);
  EXPECT_EQ(MakeBudget(training, 7)->total_steps, 5);  // steps win
  training.set_steps(0);
  training.set_epochs(0);
  EXPECT_THAT(MakeBudget(training, 7).status().message(), HasSubstr("both 0"));
}

TEST_F(TrainerTest, DataIsSplitBySubjectAndSlicedAlongTheAcquisition) {
  TrainingData data = KneeData(test_util::TinyModel());
  EXPECT_THAT(data.train_subjects, SizeIs(4));
  EXPECT_THAT(data.validation_subjects, SizeIs(1));
  for (const std::string& id : data.validation_subjects) {
    EXPECT_EQ(std::count(data.train_subjects.begin(), data.train_subjects.end(), id), 0);
  }
  EXPECT_THAT(data.slice_axes, ElementsAre(0));  // sagittal knees
  EXPECT_EQ(data.train->size(), 4 * 6);
  EXPECT_EQ(data.train->images.size(1), 64);
  EXPECT_LE(data.train->labels.max().item<int64_t>(), 4);
  EXPECT_EQ(SamplesByJoint(*data.train).at("knee"), 24);
}

TEST_F(TrainerTest, LossDecreases) {
  v1::ModelConfig model = test_util::TinyModel();
  TrainerOptions options = Options(model, 36);  // 6 steps per epoch, 6 epochs
  options.training.set_validation_interval(100);
  auto trainer = SegmentationTrainer::Create(options, KneeData(model));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  const std::vector<double>& losses = summary->loop.epoch_losses;
  ASSERT_THAT(losses, SizeIs(6));
  EXPECT_LT(losses.back(), 0.8 * losses.front()) << ::testing::PrintToString(losses);
  // Validated once, at the end.
  EXPECT_FALSE(summary->loop.last_validation.empty());
  EXPECT_THAT(summary->loop.last_validation.structures, SizeIs(4));
  EXPECT_TRUE(summary->metrics.contains("val_dice/knee/femur"));
}

// A federated round's deadline: training stops after the step during which the stop time passes,
// with the partial epoch's losses, and without validating (no time left for it).
TEST_F(TrainerTest, StopsEarlyWhenOutOfTime) {
  v1::ModelConfig model = test_util::TinyModel();
  TrainerOptions options = Options(model, 36);
  options.stop_at_unix_s = 1;  // long past
  auto trainer = SegmentationTrainer::Create(options, KneeData(model));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->loop.out_of_time);
  EXPECT_FALSE(summary->loop.finished);
  EXPECT_EQ(summary->loop.steps_done, 1);
  EXPECT_TRUE(summary->loop.last_validation.empty());
  EXPECT_TRUE(summary->metrics.contains("loss"));
}

TEST_F(TrainerTest, ResumeContinuesExactlyAsAnUninterruptedRun) {
  v1::ModelConfig model = test_util::TinyModel();
  const TrainingData data = KneeData(model);
  const fs::path straight = test_util::TempDir("straight");
  const fs::path resumed = test_util::TempDir("resumed");

  TrainerOptions options = Options(model, 8);
  options.run_dir = straight;
  auto a = SegmentationTrainer::Create(options, data);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*a)->Train().ok());

  options.run_dir = resumed;
  options.stop_at_step = 5;  // mid-epoch (6 steps per epoch)
  {
    auto b = SegmentationTrainer::Create(options, data);
    ASSERT_TRUE(b.ok());
    auto first = (*b)->Train();
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(first->loop.finished);
    EXPECT_EQ(first->loop.steps_done, 5);
  }
  options.stop_at_step = -1;
  auto c = SegmentationTrainer::Create(options, data);  // fresh network and optimizer
  ASSERT_TRUE(c.ok());
  auto second = (*c)->Train();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->loop.start_step, 5);
  EXPECT_TRUE(second->loop.finished);

  const common::tensors::TensorMap wa = (*a)->Weights(), wc = (*c)->Weights();
  ASSERT_EQ(wa.size(), wc.size());
  for (const auto& [name, tensor] : wa) {
    EXPECT_TRUE(torch::equal(tensor, wc.at(name))) << name;
  }
  EXPECT_TRUE(fs::exists(resumed / "model.safetensors"));
  EXPECT_TRUE(fs::exists(resumed / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(resumed / "checkpoint" / "best.safetensors"));

  // A different configuration in the same folder is refused, not silently continued.
  options.seed = 12;
  auto d = SegmentationTrainer::Create(options, data);
  ASSERT_TRUE(d.ok());
  auto refused = (*d)->Train();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("different run"));
  fs::remove_all(straight);
  fs::remove_all(resumed);
}

// Relative distance between eval-mode logits (running statistics) and training-mode logits
// (the slices' own batch statistics) of the knee head over every training slice.
double EvalVsBatchStatisticsGap(common::model::UNet net, const at::Tensor& slices) {
  torch::NoGradGuard no_grad;
  net->eval();
  at::Tensor eval = net->forward(slices, 0).logits[0];
  net->train();
  at::Tensor batch = net->forward(slices, 0).logits[0];
  return ((eval - batch).norm() / batch.norm()).item<double>();
}

// After federated averaging the statistics a site kept describe other weights; re-estimation
// makes eval mode see what the weights produce on the site's slices again.
TEST_F(TrainerTest, NormalizationRecalibrationMatchesTheWeightsInUse) {
  v1::ModelConfig model = test_util::TinyModel();
  TrainingData data = KneeData(model, 0);
  // Re-estimation draws batches as training does; batches of every slice, unaugmented, make the
  // expected statistics those of all the slices at once.
  TrainerOptions options = Options(model, 1);
  options.training.set_batch_size(static_cast<int32_t>(data.train->size()));
  options.training.set_augment(false);
  options.training.set_foreground_probability(0);
  auto trainer = SegmentationTrainer::Create(options, data);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  // Statistics from "another network": far from what these weights produce.
  common::tensors::TensorMap weights = (*trainer)->Weights();
  const common::tensors::TensorMap original = weights;
  for (auto& [name, tensor] : weights) {
    if (name.ends_with("norms.knee.running_mean")) tensor = torch::full_like(tensor, 3.0);
    if (name.ends_with("norms.knee.running_var")) tensor = torch::full_like(tensor, 0.05);
  }
  ASSERT_TRUE((*trainer)->LoadWeights(weights).ok());
  const at::Tensor slices = data.train->images.unsqueeze(1);
  const double before = EvalVsBatchStatisticsGap((*trainer)->model(), slices);

  ASSERT_TRUE((*trainer)->LoadWeights(weights).ok());
  ASSERT_TRUE((*trainer)->RecalibrateNormalization(/*batches=*/50).ok());
  const common::tensors::TensorMap recalibrated = (*trainer)->Weights();
  const double after = EvalVsBatchStatisticsGap((*trainer)->model(), slices);
  EXPECT_GT(before, 0.5);
  // Batches are drawn with replacement, so their averaged moments approach the full set's only
  // up to sampling noise and the (n-1)/n variance bias (0.066 measured with 50 batches).
  EXPECT_LT(after, 0.1) << "before: " << before;
  // Only running statistics changed: every learned weight is as loaded.
  for (const auto& [name, tensor] : recalibrated) {
    if (name.find("running_") != std::string::npos || name.ends_with("num_batches_tracked")) {
      continue;
    }
    EXPECT_TRUE(torch::equal(tensor, weights.at(name))) << name;
  }
  EXPECT_FALSE(torch::equal(recalibrated.at("encoder.bn1.norms.knee.running_mean"),
                            weights.at("encoder.bn1.norms.knee.running_mean")));
}

// A site holding one joint of a multi-joint model re-estimates that joint's statistics only; the
// others' (never drawn here) keep their values instead of being reset.
TEST_F(TrainerTest, NormalizationRecalibrationLeavesJointsWithoutSlicesAlone) {
  v1::ModelConfig model = test_util::TinyModel({"ankle", "knee"});
  auto trainer = SegmentationTrainer::Create(Options(model, 1), KneeData(model, 0));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  common::tensors::TensorMap weights = (*trainer)->Weights();
  for (auto& [name, tensor] : weights) {
    if (name.find("running_mean") != std::string::npos) tensor = torch::full_like(tensor, 3.0);
  }
  ASSERT_TRUE((*trainer)->LoadWeights(weights).ok());
  ASSERT_TRUE((*trainer)->RecalibrateNormalization(/*batches=*/2).ok());
  const common::tensors::TensorMap after = (*trainer)->Weights();
  EXPECT_TRUE(torch::equal(after.at("encoder.bn1.norms.ankle.running_mean"),
                           weights.at("encoder.bn1.norms.ankle.running_mean")));
  EXPECT_FALSE(torch::equal(after.at("encoder.bn1.norms.knee.running_mean"),
                            weights.at("encoder.bn1.norms.knee.running_mean")));
}

TEST_F(TrainerTest, StrictLoadingNamesTheMismatchedTensor) {
  v1::ModelConfig model = test_util::TinyModel();
  auto trainer = SegmentationTrainer::Create(Options(model, 1), KneeData(model));
  ASSERT_TRUE(trainer.ok());
  common::tensors::TensorMap weights = (*trainer)->Weights();
  weights["heads.knee.weight"] = torch::zeros({3, 8, 1, 1});
  weights.erase("encoder.conv1.weight");
  weights["extra.weight"] = torch::zeros({1});
  absl::Status status = (*trainer)->LoadWeights(weights);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      status.message(),
      AllOf(HasSubstr("1 missing (encoder.conv1.weight)"), HasSubstr("1 unexpected (extra.weight)"),
            HasSubstr("heads.knee.weight: file [3, 8, 1, 1] vs model [5, ")));
}

TEST_F(TrainerTest, FederatedRoundKeepsNamesAndReturnsUnitPrototypes) {
  auto trainer = KneeFederatedTrainer(/*seed=*/7);
  ASSERT_TRUE(trainer.ok()) << trainer.status();

  fedjoint::v1::Task task;
  task.set_kind(fedjoint::v1::Task::TRAIN);
  task.set_phase("segmentation");
  task.set_round(3);
  *task.mutable_model() = test_util::TinyModel({"ankle", "knee"});
  *task.mutable_local() = test_util::TinyTraining(2);
  task.mutable_local()->mutable_loss()->set_contrastive_weight(0.1);
  for (auto [pattern, scope] :
       {std::pair{"*norm*", "site"}, {"heads.*", "domain"}, {"*", "global"}}) {
    auto* rule = task.add_scopes();
    rule->set_pattern(pattern);
    rule->set_scope(scope);
  }
  // Another domain's prototypes: the knee site's only negatives.
  for (int stage : {2, 3, 4}) {
    auto* p = task.add_prototypes();
    p->set_domain("ankle");
    p->set_scale(stage);
    p->set_count(10);
    for (int k = 0; k < 128; ++k) p->add_values(k == stage ? 1.0f : 0.0f);
  }

  auto site = (*trainer)->InitialSiteTensors(task);
  ASSERT_TRUE(site.ok()) << site.status();
  ASSERT_FALSE(site->empty());
  for (const auto& [name, tensor] : *site) EXPECT_THAT(name, HasSubstr("norm")) << name;

  auto net = common::model::BuildUNet(task.model(), 5);
  ASSERT_TRUE(net.ok());
  TrainRequest request;
  request.task = task;
  request.weights = inference::StateDict(**net);
  double progress = 0;
  request.on_progress = [&progress](double p) { progress = p; };
  auto result = (*trainer)->Train(request);
  ASSERT_TRUE(result.ok()) << result.status();

  std::vector<std::string> sent, received;
  for (const auto& [name, t] : request.weights) sent.push_back(name);
  for (const auto& [name, t] : result->weights) received.push_back(name);
  EXPECT_EQ(sent, received);
  EXPECT_DOUBLE_EQ(progress, 1.0);
  const TrainingData data = KneeData(task.model());
  EXPECT_EQ(result->num_samples, data.train->size());
  // What the site declares at join counts every labelled slice (5 subjects x 6), so no task's
  // validation holdout makes an update claim more than was declared.
  auto declared = (*trainer)->SamplesByJoint(task.model());
  ASSERT_TRUE(declared.ok()) << declared.status();
  EXPECT_EQ(declared->at("knee"), 5 * 6);
  EXPECT_LE(result->num_samples, declared->at("knee"));
  EXPECT_TRUE(result->metrics.contains("contrastive"));
  EXPECT_TRUE(result->metrics.contains("val_dice_mean"));
  // The ankle head saw no sample: unchanged.
  EXPECT_TRUE(torch::equal(result->weights.at("heads.ankle.weight"),
                           request.weights.at("heads.ankle.weight")));
  EXPECT_FALSE(torch::equal(result->weights.at("heads.knee.weight"),
                            request.weights.at("heads.knee.weight")));

  ASSERT_THAT(result->prototypes, SizeIs(3));  // knee x stages 2, 3, 4
  for (const auto& p : result->prototypes) {
    EXPECT_EQ(p.domain(), "knee");
    EXPECT_EQ(p.count(), data.train->size());
    ASSERT_EQ(p.values_size(), 128);
    double norm = 0;
    for (float v : p.values()) {
      ASSERT_TRUE(std::isfinite(v));
      norm += static_cast<double>(v) * v;
    }
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-5);
  }

  // Weights of another network are refused with the difference named.
  request.weights.erase("decoder.blocks.0.conv1.weight");
  auto refused = (*trainer)->Train(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              AllOf(HasSubstr("round 3"), HasSubstr("decoder.blocks.0.conv1.weight")));
}

// "FedAvg everything" (one rule, `*: global`): the integer bookkeeping tensors (BatchNorm's
// num_batches_tracked) are never averaged, so they are the site's part even then; without them
// the first round could not build the network from global + site tensors.
TEST_F(TrainerTest, InitialSiteTensorsHoldIntegerTensorsWhenEverythingIsGlobal) {
  auto trainer = KneeFederatedTrainer(/*seed=*/1);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  fedjoint::v1::Task task;
  task.set_kind(fedjoint::v1::Task::TRAIN);
  task.set_phase("segmentation");
  task.set_round(1);
  *task.mutable_model() = test_util::TinyModel({"knee"});
  auto* rule = task.add_scopes();
  rule->set_pattern("*");
  rule->set_scope("global");

  auto site = (*trainer)->InitialSiteTensors(task);
  ASSERT_TRUE(site.ok()) << site.status();
  ASSERT_FALSE(site->empty());
  for (const auto& [name, tensor] : *site) {
    EXPECT_THAT(name, HasSubstr("num_batches_tracked"));
    EXPECT_FALSE(at::isFloatingType(tensor.scalar_type())) << name;
  }
  auto net = common::model::BuildUNet(task.model(), 5);
  ASSERT_TRUE(net.ok());
  int64_t integer_tensors = 0;
  for (const auto& [name, tensor] : inference::StateDict(**net)) {
    if (!at::isFloatingType(tensor.scalar_type())) ++integer_tensors;
  }
  EXPECT_EQ(static_cast<int64_t>(site->size()), integer_tensors);
}

TEST_F(TrainerTest, ShapePriorTrainsAndRegularizesSegmentation) {
  v1::ModelConfig model = test_util::TinyModel();
  const TrainingData data = KneeData(model);
  v1::ModelConfig ae_model = model;
  ae_model.set_architecture("shape_autoencoder");
  TrainerOptions ae_options = Options(ae_model, 4);
  auto ae = ShapePriorTrainer::Create(ae_options, data);
  ASSERT_TRUE(ae.ok()) << ae.status();
  auto ae_summary = (*ae)->Train();
  ASSERT_TRUE(ae_summary.ok()) << ae_summary.status();
  EXPECT_TRUE(ae_summary->metrics.contains("val_dice_mean"));
  const common::tensors::TensorMap ae_weights = (*ae)->Weights();

  TrainerOptions options = Options(model, 2);
  options.training.mutable_loss()->set_shape_prior_weight(0.5);
  auto trainer = SegmentationTrainer::Create(options, data);
  ASSERT_TRUE(trainer.ok());
  ASSERT_TRUE((*trainer)->SetShapePrior(ae_weights).ok());
  auto summary = (*trainer)->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_TRUE(summary->metrics.contains("shape_prior"));
  EXPECT_GT(summary->metrics.at("shape_prior"), 0.0);
  EXPECT_NEAR(summary->metrics.at("loss"),
              summary->metrics.at("segmentation") + 0.5 * summary->metrics.at("shape_prior"),
              1e-3 * summary->metrics.at("loss"));

  // An auto-encoder made for fewer channels than the knee needs is refused.
  common::tensors::TensorMap small = ae_weights;
  small["encoder.0.weight"] = torch::zeros({16, 2, 3, 3});
  EXPECT_THAT((*trainer)->SetShapePrior(small).message(), HasSubstr("takes 2 channels"));
}

}  // namespace
}  // namespace fedjoint::site_agent::training
