#include "site_agent/train_command.h"

#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "common/base/status_macros.h"
#include "common/config/config.h"
#include "common/data/manifest.h"
#include "common/log/logging.h"
#include "common/model/model_factory.h"
#include "common/model/transfer.h"
#include "site_agent/inference/weights.h"
#include "site_agent/training/progress.h"
#include "site_agent/training/segmentation_trainer.h"
#include "site_agent/training/shape_prior_trainer.h"
#include "site_agent/training/training_data.h"

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;

struct TrainCommandOptions {
  std::string config;
  std::string out;
  std::string shape_prior;
  std::string init_from;
  int64_t shape_prior_steps = 400;
  bool no_resume = false;
  bool quiet = false;
  int64_t stop_at_step = -1;
};

void PrintSummary(const training::TrainSummary& summary, const fs::path& run_dir) {
  const training::LoopResult& loop = summary.loop;
  std::cout << fmt::format("trained {} steps ({} in this run, {}); model: {}\n", loop.steps_done,
                           loop.steps_done - loop.start_step,
                           training::FormatDuration(loop.seconds),
                           loop.model_path.empty() ? "(not finished)" : loop.model_path.string());
  const training::ValidationResult& best =
      loop.best_validation.empty() ? loop.last_validation : loop.best_validation;
  if (!best.empty()) {
    std::cout << fmt::format("validation Dice (step {}, {} subject(s)):\n",
                             loop.best_step > 0 ? loop.best_step : loop.steps_done, best.subjects);
    for (const auto& s : best.structures) {
      std::cout << fmt::format("  {:<10} {:<12} {:.4f}\n", s.joint, s.structure, s.dice);
    }
    std::cout << fmt::format("  mean                    {:.4f}\n", best.mean_dice);
  }
  std::cout << fmt::format("metrics log: {}\n", (run_dir / "metrics.jsonl").string());
}

absl::Status RunTrain(const TrainCommandOptions& cli) {
  const auto& log = common::log::Get("train");
  ASSIGN_OR_RETURN(v1::SiteConfig config, common::config::LoadConfig<v1::SiteConfig>(cli.config));
  if (!config.has_model()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: `model` is required for local training", cli.config));
  }
  RETURN_IF_ERROR(common::model::ValidateModelConfig(config.model()));
  const fs::path run_dir =
      cli.out.empty() ? fs::path(config.state_dir()) / "train" : fs::path(cli.out);
  ASSIGN_OR_RETURN(common::data::Manifest manifest, common::data::LoadManifest(config.manifest()));
  const v1::LocalTrainingConfig& training = config.training();
  ASSIGN_OR_RETURN(training::TrainingData data,
                   training::LoadTrainingData(manifest, config.model(),
                                              training.validation_fraction(), config.seed()));

  training::TrainerOptions options;
  options.model = config.model();
  options.training = training;
  options.seed = static_cast<uint64_t>(config.seed());
  options.threads = config.threads();
  options.loader_threads = config.loader_threads();
  options.run_dir = run_dir;
  options.resume = !cli.no_resume;
  options.show_progress = !cli.quiet;
  options.stop_at_step = cli.stop_at_step;

  if (config.model().architecture() == "shape_autoencoder") {
    options.label = "shape prior";
    ASSIGN_OR_RETURN(auto trainer, training::ShapePriorTrainer::Create(options, data));
    ASSIGN_OR_RETURN(training::TrainSummary summary, trainer->Train());
    PrintSummary(summary, run_dir);
    return absl::OkStatus();
  }

  ASSIGN_OR_RETURN(auto trainer, training::SegmentationTrainer::Create(options, data));
  if (!cli.init_from.empty()) {
    // Fine-tuning (the transfer scheme). A checkpoint in the run folder still wins: a resumed
    // run continues from its own weights.
    ASSIGN_OR_RETURN(fs::path source_path, inference::ResolveModelPath(cli.init_from));
    ASSIGN_OR_RETURN(inference::ModelFile source, inference::ReadModelFile(source_path));
    common::tensors::TensorMap weights = trainer->Weights();
    auto report = common::model::TransferWeights(source.weights, weights);
    if (!report.ok()) {
      return absl::InvalidArgumentError(fmt::format("--init-from {}: {}", source_path.string(),
                                                    std::string(report.status().message())));
    }
    RETURN_IF_ERROR(trainer->LoadWeights(weights));
    log->info("initialized from {}: {}", source_path.string(), report->ToString());
  }
  if (training.loss().shape_prior_weight() > 0) {
    common::tensors::TensorMap prior;
    if (!cli.shape_prior.empty()) {
      ASSIGN_OR_RETURN(inference::ModelFile file, inference::ReadModelFile(cli.shape_prior));
      prior = std::move(file.weights);
    } else {
      // No auto-encoder given: train one on this site's training masks first (its own run
      // folder, so it is resumed and reused as well).
      training::TrainerOptions ae = options;
      ae.model.set_architecture("shape_autoencoder");
      ae.training.set_steps(static_cast<int32_t>(cli.shape_prior_steps));
      ae.training.set_epochs(0);
      ae.run_dir = run_dir / "shape_prior";
      ae.label = "shape prior";
      log->info("training the shape-prior auto-encoder first ({} steps, {})", cli.shape_prior_steps,
                ae.run_dir.string());
      ASSIGN_OR_RETURN(auto ae_trainer, training::ShapePriorTrainer::Create(ae, data));
      ASSIGN_OR_RETURN(training::TrainSummary ae_summary, ae_trainer->Train());
      log->info("shape prior: {}", ae_summary.loop.last_validation.Summary());
      prior = ae_trainer->Weights();
    }
    RETURN_IF_ERROR(trainer->SetShapePrior(prior));
  }
  ASSIGN_OR_RETURN(training::TrainSummary summary, trainer->Train());
  PrintSummary(summary, run_dir);
  return absl::OkStatus();
}

}  // namespace

void AddTrainCommand(common::cli::Program& program) {
  auto options = std::make_shared<TrainCommandOptions>();
  CLI::App* sub = program.app().add_subcommand(
      "train", "Train a model on this site's data alone (the individual or multi-domain scheme)");
  sub->add_option("--config", options->config, "Site config (YAML): manifest, model, training")
      ->required();
  sub->add_option("--out", options->out,
                  "Run folder: checkpoints, metrics.jsonl, model.safetensors (default: "
                  "STATE_DIR/train)");
  sub->add_option("--shape-prior", options->shape_prior,
                  "Shape auto-encoder model file for the shape-prior loss (default: train one "
                  "first when loss.shape_prior_weight > 0)");
  sub->add_option("--init-from", options->init_from,
                  "Start from another model's weights (fine-tuning; the transfer scheme): tensors "
                  "with the same name and shape are copied, a one-joint model's norms start the "
                  "new joint's norms, the rest (e.g. a new joint's head) starts fresh");
  sub->add_option("--shape-prior-steps", options->shape_prior_steps,
                  "Steps of that auto-encoder training")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_flag("--no-resume", options->no_resume,
                "Start over even when the run folder holds a checkpoint (overwrites it)");
  sub->add_flag("--quiet", options->quiet, "No progress bar or progress lines");
  sub->add_option("--stop-at-step", options->stop_at_step,
                  "Stop (with a checkpoint) after this many steps; rerun to continue")
      ->group("");
  program.SetAction(sub, [options] { return RunTrain(*options); });
}

}  // namespace fedjoint::site_agent
