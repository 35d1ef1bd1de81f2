#include "site_agent/training/federated_trainer.h"

#include <algorithm>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/base/status_macros.h"
#include "common/config/yaml_loader.h"
#include "common/data/rng.h"
#include "common/log/logging.h"
#include "common/model/model_factory.h"
#include "site_agent/federation/egress_filter.h"
#include "site_agent/inference/weights.h"
#include "site_agent/training/progress.h"
#include "site_agent/training/segmentation_trainer.h"
#include "site_agent/training/shape_prior_trainer.h"

namespace fedjoint::site_agent::training {
namespace {

using common::tensors::TensorMap;

absl::Status Annotate(const absl::Status& status, const std::string& where) {
  if (status.ok()) return status;
  return absl::Status(status.code(), fmt::format("{}: {}", where, std::string(status.message())));
}

// The part of a model config that decides which slices are read and how.
std::string DataKey(const v1::ModelConfig& model, double validation_fraction) {
  v1::ModelConfig key;
  *key.mutable_joints() = model.joints();
  key.set_input_size(model.input_size());
  key.set_in_plane_spacing_mm(model.in_plane_spacing_mm());
  key.set_slice_axis(model.slice_axis());
  return fmt::format("{}|{}", key.SerializeAsString(), validation_fraction);
}

// The local-training section as the configuration parser fills it when a config omits it.
absl::StatusOr<v1::LocalTrainingConfig> DefaultLocalTraining() {
  v1::LocalTrainingConfig training;
  RETURN_IF_ERROR(common::config::ParseYamlInto("{}", "training defaults", {}, &training));
  return training;
}

namespace fs = std::filesystem;

// STATE/optimizer/<phase>.round-<r>.pt: the optimizer state after round r of a phase.
fs::path OptimizerStatePath(const fs::path& dir, const std::string& phase, int64_t round) {
  return dir / fmt::format("{}.round-{}.pt", phase, round);
}

// The rounds of `phase` with a saved optimizer state, ascending.
std::vector<int64_t> SavedOptimizerRounds(const fs::path& dir, const std::string& phase) {
  std::vector<int64_t> rounds;
  std::error_code ec;
  const std::string prefix = phase + ".round-";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix) || !name.ends_with(".pt")) continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - 3);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    rounds.push_back(std::stoll(digits));
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds;
}

// Which parameters stay as the federation left them when personalizing only the decoder side:
// the encoder's convolutions (its normalization adapts with the rest).
bool IsEncoderConvolution(std::string_view name) {
  return name.starts_with("encoder.") && name.find(".norms.") == std::string_view::npos;
}

}  // namespace

FederatedTrainer::FederatedTrainer(FederatedTrainerOptions options, common::data::Manifest manifest)
    : options_(std::move(options)), manifest_(std::move(manifest)) {}

absl::StatusOr<std::unique_ptr<FederatedTrainer>> FederatedTrainer::Create(
    FederatedTrainerOptions options) {
  ASSIGN_OR_RETURN(common::data::Manifest manifest, common::data::LoadManifest(options.manifest));
  return std::unique_ptr<FederatedTrainer>(
      new FederatedTrainer(std::move(options), std::move(manifest)));
}

absl::StatusOr<TrainingData> FederatedTrainer::Data(const v1::ModelConfig& model,
                                                    double validation_fraction) {
  const std::string key = DataKey(model, validation_fraction);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  ASSIGN_OR_RETURN(TrainingData data,
                   LoadTrainingData(manifest_, model, validation_fraction, options_.seed));
  cache_[key] = data;
  return data;
}

absl::StatusOr<std::map<std::string, int64_t>> FederatedTrainer::SamplesByJoint(
    const v1::ModelConfig& model) {
  ASSIGN_OR_RETURN(TrainingData data,
                   LoadTrainingData(manifest_, model, /*validation_fraction=*/0, options_.seed));
  return training::SamplesByJoint(*data.train);
}

absl::StatusOr<TensorMap> FederatedTrainer::InitialSiteTensors(const fedjoint::v1::Task& task) {
  const std::string where = fmt::format("phase '{}'", task.phase());
  RETURN_IF_ERROR(Annotate(common::model::ValidateModelConfig(task.model()), where));
  TensorMap all;
  if (task.model().architecture() == "shape_autoencoder") {
    ASSIGN_OR_RETURN(auto net, common::model::BuildShapeAutoEncoder(task.model()));
    all = inference::StateDict(*net);
  } else {
    ASSIGN_OR_RETURN(auto net, common::model::BuildUNet(task.model()));
    all = inference::StateDict(*net);
  }
  // Which tensors are site-scoped is the egress filter's decision (the site's joints do not
  // matter for what stays).
  absl::StatusOr<EgressFilter> egress = EgressFilter::ForTask(task, {});
  if (!egress.ok()) return Annotate(egress.status(), where);
  absl::StatusOr<TensorMap> site = egress->SiteScoped(all);
  if (!site.ok()) return Annotate(site.status(), where);
  return site;
}

absl::StatusOr<TensorMap> FederatedTrainer::PrepareForInference(const v1::ModelConfig& model,
                                                                TensorMap weights) {
  if (model.architecture() == "shape_autoencoder") return weights;
  const std::string where = "preparing the final model";
  RETURN_IF_ERROR(Annotate(common::model::ValidateModelConfig(model), where));
  absl::StatusOr<TrainingData> data = Data(model, /*validation_fraction=*/0);
  if (!data.ok()) return Annotate(data.status(), where);
  TrainerOptions options = BaseOptions(model, where);
  options.show_progress = false;
  // Batches as the last segmentation round drew them (pull-model before any round: the
  // configuration defaults), since those are the statistics the weights were trained under.
  ASSIGN_OR_RETURN(options.training, LastSegmentationTraining());
  ASSIGN_OR_RETURN(auto trainer, SegmentationTrainer::Create(options, *data));
  RETURN_IF_ERROR(Annotate(trainer->LoadWeights(weights), where));
  RETURN_IF_ERROR(Annotate(trainer->RecalibrateNormalization(), where));
  common::log::Get("train")->info(
      "{}: normalization statistics re-estimated on 100 batches drawn from {} training slice(s)",
      where, data->train->size());
  return trainer->Weights();
}

TrainerOptions FederatedTrainer::BaseOptions(const v1::ModelConfig& model,
                                             std::string label) const {
  TrainerOptions options;
  options.model = model;
  options.threads = options_.threads;
  options.loader_threads = options_.loader_threads;
  options.seed = options_.seed;
  options.show_progress = options_.show_progress;
  options.label = std::move(label);
  return options;
}

absl::StatusOr<v1::LocalTrainingConfig> FederatedTrainer::LastSegmentationTraining() const {
  if (last_segmentation_training_) return *last_segmentation_training_;
  return DefaultLocalTraining();
}

absl::StatusOr<TensorMap> FederatedTrainer::Personalize(const v1::ModelConfig& model,
                                                        TensorMap weights,
                                                        const v1::PersonalizationConfig& config) {
  const std::string where = "personalizing the final model";
  if (model.architecture() != "unet_resnet") {
    return absl::InvalidArgumentError(
        fmt::format("{}: only segmentation models are personalized (this one is '{}')", where,
                    model.architecture()));
  }
  if (config.steps() <= 0) {
    return absl::InvalidArgumentError(fmt::format("{}: personalization.steps is 0", where));
  }
  RETURN_IF_ERROR(Annotate(common::model::ValidateModelConfig(model), where));
  absl::StatusOr<TrainingData> data = Data(model, /*validation_fraction=*/0);
  if (!data.ok()) return Annotate(data.status(), where);
  TrainerOptions options = BaseOptions(model, "personalization");
  ASSIGN_OR_RETURN(options.training, LastSegmentationTraining());
  options.training.set_steps(config.steps());
  options.training.set_validation_fraction(0);
  v1::OptimizerConfig& optimizer = *options.training.mutable_optimizer();
  optimizer.set_learning_rate(config.learning_rate());
  optimizer.set_warmup_steps(0);
  optimizer.set_schedule("cosine");
  options.training.mutable_loss()->set_proximal_mu(0);
  options.seed = common::data::DeriveSeed({options_.seed, common::data::Fingerprint(where)});
  if (config.parameters() == "decoder") options.frozen = IsEncoderConvolution;
  ASSIGN_OR_RETURN(auto trainer, SegmentationTrainer::Create(options, *data));
  RETURN_IF_ERROR(Annotate(trainer->LoadWeights(weights), where));
  ASSIGN_OR_RETURN(TrainSummary summary, trainer->Train());
  RETURN_IF_ERROR(Annotate(trainer->RecalibrateNormalization(), where));
  common::log::Get("train")->info(
      "{}: {} steps ({} parameters) on {} training slice(s) in {}, loss {:.4f}", where,
      summary.loop.steps_done, config.parameters(), data->train->size(),
      FormatDuration(summary.loop.seconds), summary.metrics["loss"]);
  return trainer->Weights();
}

absl::StatusOr<TrainResult> FederatedTrainer::Train(TrainRequest request) {
  const fedjoint::v1::Task& task = request.task;
  const std::string where = fmt::format("round {} ({})", task.round(), task.phase());
  const auto& log = common::log::Get("train");
  RETURN_IF_ERROR(Annotate(common::model::ValidateModelConfig(task.model()), where));
  absl::StatusOr<TrainingData> data = Data(task.model(), task.local().validation_fraction());
  if (!data.ok()) return Annotate(data.status(), where);

  TrainerOptions options = BaseOptions(task.model(), where);
  options.training = task.local();
  options.seed = common::data::DeriveSeed({options_.seed, common::data::Fingerprint(task.phase()),
                                           static_cast<uint64_t>(task.round())});
  options.on_progress = request.on_progress;
  options.stop_at_unix_s = request.train_until_unix_s;
  const v1::OptimizerConfig& optimizer = task.local().optimizer();
  if (optimizer.federated_schedule() == "phase" && task.phase_rounds() > 0 &&
      task.phase_round() >= 1 && task.phase_round() <= task.phase_rounds()) {
    options.schedule_round = task.phase_round() - 1;
    options.schedule_rounds = task.phase_rounds();
  }
  const bool keep_optimizer = optimizer.keep_state_across_rounds() && !options_.state_dir.empty();
  const fs::path optimizer_dir = options_.state_dir / "optimizer";

  TrainResult result;
  TrainSummary summary;
  if (task.model().architecture() == "shape_autoencoder") {
    ASSIGN_OR_RETURN(auto trainer, ShapePriorTrainer::Create(options, *data));
    RETURN_IF_ERROR(Annotate(trainer->LoadWeights(request.weights), where));
    ASSIGN_OR_RETURN(summary, trainer->Train());
    result.weights = trainer->Weights();
  } else {
    last_segmentation_training_ = task.local();
    ASSIGN_OR_RETURN(auto trainer, SegmentationTrainer::Create(options, *data));
    RETURN_IF_ERROR(Annotate(trainer->LoadWeights(request.weights), where));
    // What the site receives, as it would use it: the round's global model with the site's own
    // tensors, before any local step (the exported model of the previous round, less the
    // normalization re-estimation).
    if (data->validation && data->validation->size() > 0) {
      ASSIGN_OR_RETURN(ValidationResult received, trainer->Validate());
      for (const auto& [name, value] : received.AsMetrics()) {
        result.metrics["received_" + name] = value;
      }
    }
    if (keep_optimizer) {
      std::vector<int64_t> saved = SavedOptimizerRounds(optimizer_dir, task.phase());
      auto before = std::lower_bound(saved.begin(), saved.end(), task.round());
      if (before != saved.begin()) {
        const fs::path path = OptimizerStatePath(optimizer_dir, task.phase(), *std::prev(before));
        if (absl::Status s = trainer->LoadOptimizerState(path); !s.ok()) {
          // Only a slower start: the state is an optimization, never part of the model.
          log->warn("{}: optimizer state not restored ({}); starting a fresh optimizer", where,
                    std::string(s.message()));
        }
      }
    }
    RETURN_IF_ERROR(Annotate(trainer->SetExternalPrototypes(std::vector<fedjoint::v1::Prototype>(
                                 task.prototypes().begin(), task.prototypes().end())),
                             where));
    const v1::LossConfig& loss = task.local().loss();
    if (loss.shape_prior_weight() > 0) {
      auto prior = request.previous_phases.find(loss.shape_prior_phase());
      if (prior != request.previous_phases.end()) {
        RETURN_IF_ERROR(Annotate(trainer->SetShapePrior(prior->second),
                                 fmt::format("{}: phase '{}'", where, prior->first)));
      } else {
        log->info("{}: no earlier phase '{}' to take the shape prior from", where,
                  loss.shape_prior_phase());
      }
    }
    ASSIGN_OR_RETURN(summary, trainer->Train());
    result.weights = trainer->Weights();
    ASSIGN_OR_RETURN(result.prototypes, trainer->ComputePrototypes());
    if (keep_optimizer) {
      std::error_code ec;
      fs::create_directories(optimizer_dir, ec);
      RETURN_IF_ERROR(Annotate(trainer->SaveOptimizerState(
                                   OptimizerStatePath(optimizer_dir, task.phase(), task.round())),
                               where));
      std::vector<int64_t> saved = SavedOptimizerRounds(optimizer_dir, task.phase());
      for (size_t i = 0; i + 2 < saved.size(); ++i) {
        fs::remove(OptimizerStatePath(optimizer_dir, task.phase(), saved[i]), ec);
      }
    }
  }
  result.num_samples = data->train->size();
  for (const auto& [name, value] : summary.metrics) result.metrics[name] = value;
  log->info("{}: {} steps in {}, loss {:.4f}{}", where, summary.loop.steps_done,
            FormatDuration(summary.loop.seconds), summary.metrics["loss"],
            summary.loop.last_validation.empty()
                ? std::string()
                : ", val " + summary.loop.last_validation.Summary());

  if (!options_.state_dir.empty()) {
    nlohmann::json record = {{"phase", task.phase()},
                             {"round", task.round()},
                             {"num_samples", result.num_samples},
                             {"seconds", summary.loop.seconds}};
    for (const auto& [name, value] : summary.loop.last_losses) record[name] = value;
    for (const auto& [name, value] : result.metrics) {
      if (name.starts_with("received_")) record[name] = value;
    }
    if (!summary.loop.last_validation.empty()) {
      record["validation"] = summary.loop.last_validation.ToJson();
    }
    std::error_code ec;
    std::filesystem::create_directories(options_.state_dir, ec);
    if (absl::Status s = MetricsLog(options_.state_dir / "metrics.jsonl").Append(record); !s.ok()) {
      log->warn("{}", std::string(s.message()));
    }
  }
  return result;
}

}  // namespace fedjoint::site_agent::training
