#include "site_agent/training/trainer_options.h"

#include "common/base/status_macros.h"
#include "site_agent/inference/weights.h"

namespace fedjoint::site_agent::training {

absl::StatusOr<TrainSummary> RunTrainer(const TrainerOptions& options,
                                        const v1::LocalTrainingConfig& training,
                                        const std::string& label,
                                        std::shared_ptr<const common::data::BatchSampler> sampler,
                                        torch::optim::Optimizer& optimizer, LoopHooks hooks,
                                        int64_t train_slices) {
  LoopOptions loop;
  loop.label = label;
  loop.training = training;
  loop.loader_threads = options.loader_threads;
  loop.run_dir = options.run_dir;
  loop.resume = options.resume;
  loop.show_progress = options.show_progress;
  loop.stop_at_step = options.stop_at_step;
  loop.stop_at_unix_s = options.stop_at_unix_s;
  loop.on_progress = options.on_progress;
  loop.schedule_round = options.schedule_round;
  loop.schedule_rounds = options.schedule_rounds;
  loop.fingerprint = RunFingerprint(options.model, training, options.seed);
  const v1::ModelConfig config = options.model;
  hooks.write_model = [config](const std::filesystem::path& path,
                               const common::tensors::TensorMap& weights,
                               const common::tensors::Metadata& extra) {
    return inference::WriteModelFile(path, weights, config, extra);
  };
  TrainSummary summary;
  ASSIGN_OR_RETURN(summary.loop, RunTrainingLoop(loop, std::move(sampler), optimizer, hooks));
  for (const auto& [name, value] : summary.loop.last_losses) summary.metrics[name] = value;
  for (const auto& [name, value] : summary.loop.last_validation.AsMetrics()) {
    summary.metrics[name] = value;
  }
  summary.metrics["steps"] = static_cast<double>(summary.loop.steps_done);
  summary.metrics["train_slices"] = static_cast<double>(train_slices);
  return summary;
}

}  // namespace fedjoint::site_agent::training
