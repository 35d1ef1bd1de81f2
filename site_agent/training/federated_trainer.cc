#include "site_agent/training/federated_trainer.h"

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
  TrainerOptions options;
  options.model = model;
  // Batches as the last segmentation round drew them (pull-model before any round: the
  // configuration defaults), since those are the statistics the weights were trained under.
  if (last_segmentation_training_) {
    options.training = *last_segmentation_training_;
  } else {
    ASSIGN_OR_RETURN(options.training, DefaultLocalTraining());
  }
  options.threads = options_.threads;
  options.loader_threads = options_.loader_threads;
  options.seed = options_.seed;
  options.label = where;
  ASSIGN_OR_RETURN(auto trainer, SegmentationTrainer::Create(options, *data));
  RETURN_IF_ERROR(Annotate(trainer->LoadWeights(weights), where));
  RETURN_IF_ERROR(Annotate(trainer->RecalibrateNormalization(), where));
  common::log::Get("train")->info(
      "{}: normalization statistics re-estimated on 100 batches drawn from {} training slice(s)",
      where, data->train->size());
  return trainer->Weights();
}

absl::StatusOr<TrainResult> FederatedTrainer::Train(TrainRequest request) {
  const fedjoint::v1::Task& task = request.task;
  const std::string where = fmt::format("round {} ({})", task.round(), task.phase());
  const auto& log = common::log::Get("train");
  RETURN_IF_ERROR(Annotate(common::model::ValidateModelConfig(task.model()), where));
  absl::StatusOr<TrainingData> data = Data(task.model(), task.local().validation_fraction());
  if (!data.ok()) return Annotate(data.status(), where);

  TrainerOptions options;
  options.model = task.model();
  options.training = task.local();
  options.seed = common::data::DeriveSeed({options_.seed, common::data::Fingerprint(task.phase()),
                                           static_cast<uint64_t>(task.round())});
  options.threads = options_.threads;
  options.loader_threads = options_.loader_threads;
  options.show_progress = options_.show_progress;
  options.on_progress = request.on_progress;
  options.stop_at_unix_s = request.train_until_unix_s;
  options.label = where;

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
  }
  result.num_samples = data->train->size();
  result.metrics = summary.metrics;
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
