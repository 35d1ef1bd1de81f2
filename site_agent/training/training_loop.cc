#include "site_agent/training/training_loop.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include <fmt/format.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/base/atomic_file.h"
#include "common/base/status_macros.h"
#include "common/data/background_loader.h"
#include "common/data/rng.h"
#include "common/log/logging.h"
#include "site_agent/training/progress.h"
#include "site_agent/training/schedule.h"

namespace fedjoint::site_agent::training {
namespace {

namespace fs = std::filesystem;
namespace data = common::data;
using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct CheckpointState {
  int64_t step = 0;
  int64_t total_steps = 0;
  double best_dice = -1;
  int64_t best_step = -1;
  std::string fingerprint;
};

fs::path CheckpointDir(const fs::path& run_dir) { return run_dir / "checkpoint"; }

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

absl::StatusOr<std::optional<CheckpointState>> ReadState(const fs::path& run_dir) {
  const fs::path path = CheckpointDir(run_dir) / "state.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<CheckpointState>();
  ASSIGN_OR_RETURN(std::string text, common::base::ReadSmallFile(path, 1 << 20));
  try {
    json j = json::parse(text);
    CheckpointState state;
    state.step = j.at("step").get<int64_t>();
    state.total_steps = j.at("total_steps").get<int64_t>();
    state.best_dice = j.at("best_dice").get<double>();
    state.best_step = j.at("best_step").get<int64_t>();
    state.fingerprint = j.at("fingerprint").get<std::string>();
    return std::optional<CheckpointState>(state);
  } catch (const json::exception& e) {
    return absl::DataLossError(
        fmt::format("{}: not a checkpoint state: {}", path.string(), e.what()));
  }
}

absl::Status WriteState(const fs::path& run_dir, const CheckpointState& state) {
  json j = {{"step", state.step},
            {"total_steps", state.total_steps},
            {"best_dice", state.best_dice},
            {"best_step", state.best_step},
            {"fingerprint", state.fingerprint}};
  return common::base::WriteFileAtomically(CheckpointDir(run_dir) / "state.json", j.dump(2) + "\n");
}

common::tensors::Metadata StepMetadata(int64_t step, int64_t total) {
  return {{"fedjoint.step", std::to_string(step)}, {"fedjoint.total_steps", std::to_string(total)}};
}

}  // namespace

absl::Status SaveOptimizer(torch::optim::Optimizer& optimizer, const fs::path& path) {
  const fs::path temp = path.string() + ".tmp";
  try {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.save_to(temp.string());
  } catch (const c10::Error& e) {
    return absl::InternalError(fmt::format("{}: cannot save the optimizer state: {}", path.string(),
                                           e.what_without_backtrace()));
  }
  return common::base::CommitTemporaryFile(temp, path);
}

absl::Status LoadOptimizer(torch::optim::Optimizer& optimizer, const fs::path& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string());
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    return absl::DataLossError(fmt::format("{}: cannot read the optimizer state: {}", path.string(),
                                           e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

void SetTrainingThreads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(1, n));
}

absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> MakeOptimizer(
    std::vector<at::Tensor> parameters, const v1::OptimizerConfig& config) {
  const double lr = config.learning_rate() > 0 ? config.learning_rate() : 1e-3;
  if (config.name() == "sgd") {
    return std::unique_ptr<torch::optim::Optimizer>(
        new torch::optim::SGD(std::move(parameters), torch::optim::SGDOptions(lr)
                                                         .momentum(config.momentum())
                                                         .weight_decay(config.weight_decay())));
  }
  if (config.name() == "adamw" || config.name().empty()) {
    return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::AdamW(
        std::move(parameters), torch::optim::AdamWOptions(lr).weight_decay(config.weight_decay())));
  }
  return absl::InvalidArgumentError(
      fmt::format("optimizer.name: '{}' is not one of adamw, sgd", config.name()));
}

std::string RunFingerprint(const v1::ModelConfig& model, const v1::LocalTrainingConfig& training,
                           uint64_t seed) {
  const uint64_t hash = data::DeriveSeed({data::Fingerprint(model.SerializeAsString()),
                                          data::Fingerprint(training.SerializeAsString()), seed});
  return fmt::format("{:016x}", hash);
}

absl::StatusOr<std::shared_ptr<const data::BatchSampler>> MakeSampler(
    std::shared_ptr<const data::SliceDataset> dataset, const v1::LocalTrainingConfig& training,
    uint64_t seed) {
  data::BatchSamplerOptions options;
  options.batch_size = training.batch_size() > 0 ? training.batch_size() : 8;
  options.foreground_probability = training.foreground_probability();
  options.augment = training.augment();
  if (training.augment_min_scale() > 0) {
    options.augment_options.min_scale = training.augment_min_scale();
  }
  if (training.augment_max_scale() > 0) {
    options.augment_options.max_scale = training.augment_max_scale();
  }
  options.seed = seed;
  return data::BatchSampler::Create(std::move(dataset), options);
}

absl::StatusOr<LoopResult> RunTrainingLoop(const LoopOptions& options,
                                           std::shared_ptr<const data::BatchSampler> sampler,
                                           torch::optim::Optimizer& optimizer, LoopHooks& hooks) {
  const auto& log = common::log::Get("train");
  LoopResult result;
  result.steps_per_epoch = sampler->batches_per_epoch();
  ASSIGN_OR_RETURN(Budget budget, MakeBudget(options.training, result.steps_per_epoch));
  result.total_steps = budget.total_steps;
  const int64_t spe = budget.steps_per_epoch;
  const int interval = std::max(1, options.training.validation_interval());
  const bool files = !options.run_dir.empty();
  const fs::path ckpt = files ? CheckpointDir(options.run_dir) : fs::path();

  CheckpointState state;
  state.total_steps = budget.total_steps;
  state.fingerprint = options.fingerprint;
  if (files) {
    std::error_code ec;
    fs::create_directories(ckpt, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          fmt::format("{}: cannot create the checkpoint folder: {}", ckpt.string(), ec.message()));
    }
    ASSIGN_OR_RETURN(std::optional<CheckpointState> saved, ReadState(options.run_dir));
    if (saved && options.resume) {
      if (saved->fingerprint != options.fingerprint || saved->total_steps != budget.total_steps) {
        return absl::FailedPreconditionError(fmt::format(
            "{} holds a checkpoint of a different run (configuration {} with {} steps; this run "
            "is {} with {} steps): use another output folder, or delete {} to start over",
            options.run_dir.string(), saved->fingerprint, saved->total_steps, options.fingerprint,
            budget.total_steps, ckpt.string()));
      }
      ASSIGN_OR_RETURN(common::tensors::TensorMap weights,
                       common::tensors::LoadSafetensors(ckpt / "last.safetensors"));
      RETURN_IF_ERROR(hooks.load_weights(weights));
      RETURN_IF_ERROR(LoadOptimizer(optimizer, ckpt / "last.optimizer.pt"));
      state = *saved;
      log->info("{}: resuming {} at step {}/{}", options.label, options.run_dir.string(),
                state.step, state.total_steps);
    }
  }
  result.start_step = state.step;
  result.best_step = state.best_step;

  const int64_t end_step = options.stop_at_step >= 0
                               ? std::min(options.stop_at_step, budget.total_steps)
                               : budget.total_steps;
  ProgressReporter progress(options.label, state.step, budget.total_steps, options.show_progress);
  MetricsLog metrics(files ? options.run_dir / "metrics.jsonl" : fs::path());

  std::unique_ptr<data::BackgroundLoader> loader;
  if (state.step < end_step) {
    data::LoaderOptions loader_options;
    loader_options.num_workers = std::max(1, options.loader_threads);
    loader_options.prefetch = 2 * loader_options.num_workers;
    loader_options.batches_per_epoch = spe;
    loader_options.start_epoch = state.step / spe;
    loader_options.start_batch = state.step % spe;
    loader_options.num_batches = end_step - state.step;
    ASSIGN_OR_RETURN(loader, data::BackgroundLoader::ForSampler(sampler, loader_options));
  }

  std::map<std::string, double> sums;
  int64_t epoch_steps = 0;
  double last_dice = kNaN;
  int64_t slices_seen = 0;
  auto write_checkpoint = [&](int64_t step) -> absl::Status {
    if (!files) return absl::OkStatus();
    RETURN_IF_ERROR(SaveOptimizer(optimizer, ckpt / "last.optimizer.pt"));
    RETURN_IF_ERROR(hooks.write_model(ckpt / "last.safetensors", hooks.weights(),
                                      StepMetadata(step, budget.total_steps)));
    state.step = step;
    return WriteState(options.run_dir, state);
  };

  int64_t steps_done = state.step;
  for (int64_t step = state.step; step < end_step; ++step) {
    ASSIGN_OR_RETURN(data::Batch batch, loader->Next());
    const double lr = LearningRateInRound(options.training.optimizer(), step, budget.total_steps,
                                          options.schedule_round, options.schedule_rounds);
    SetLearningRate(optimizer, lr);
    ASSIGN_OR_RETURN(auto losses, hooks.step(batch));
    for (const auto& [name, value] : losses) {
      if (!std::isfinite(value)) {
        return absl::InternalError(fmt::format(
            "{}: the {} loss became {} at step {} (learning rate {:.3g}): training diverged; try "
            "a lower learning rate or gradient clipping",
            options.label, name, value, step + 1, lr));
      }
      sums[name] += value;
    }
    ++epoch_steps;
    slices_seen += batch.images.size(0);
    const int64_t done = step + 1;
    steps_done = done;
    const double mean_loss = sums["loss"] / static_cast<double>(epoch_steps);
    progress.Update(done, mean_loss, last_dice);
    if (options.on_progress) {
      options.on_progress(static_cast<double>(done) / static_cast<double>(budget.total_steps));
    }

    const bool epoch_end = done % spe == 0 || done == budget.total_steps;
    const bool interrupted = done == end_step && !epoch_end;
    result.out_of_time =
        done < end_step && options.stop_at_unix_s > 0 &&
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count() >= options.stop_at_unix_s;
    if (result.out_of_time && !epoch_end) {
      // The partial epoch's means stand for the result (no validation: no time left for it).
      result.last_losses.clear();
      for (const auto& [name, value] : sums) {
        result.last_losses[name] = value / static_cast<double>(epoch_steps);
      }
      progress.Note(fmt::format("{}: stopped at step {}/{}: out of time", options.label, done,
                                budget.total_steps));
      RETURN_IF_ERROR(write_checkpoint(done));
      break;
    }
    if (!epoch_end && !interrupted) continue;
    if (interrupted) {
      // As if killed after this step: checkpoint, but no epoch record.
      RETURN_IF_ERROR(write_checkpoint(done));
      break;
    }
    const int64_t epoch = (done - 1) / spe + 1;
    result.last_losses.clear();
    for (const auto& [name, value] : sums) {
      result.last_losses[name] = value / static_cast<double>(epoch_steps);
    }
    result.epoch_losses.push_back(result.last_losses["loss"]);
    json record = {{"kind", options.label},
                   {"epoch", epoch},
                   {"step", done},
                   {"total_steps", budget.total_steps},
                   {"lr", lr},
                   {"seconds", progress.ElapsedSeconds()},
                   {"slices_per_s", static_cast<double>(slices_seen) / progress.ElapsedSeconds()}};
    for (const auto& [name, value] : result.last_losses) record[name] = value;
    std::string note =
        fmt::format("{} epoch {}/{} step {}/{} loss {:.4f}", options.label, epoch, budget.epochs(),
                    done, budget.total_steps, result.last_losses["loss"]);
    const bool validate = hooks.validate && !result.out_of_time &&
                          (epoch % interval == 0 || done == budget.total_steps);
    bool improved = false;
    if (validate) {
      ASSIGN_OR_RETURN(result.last_validation, hooks.validate());
      if (!result.last_validation.empty()) {
        last_dice = result.last_validation.mean_dice;
        record["validation"] = result.last_validation.ToJson();
        note += fmt::format(" | val {}", result.last_validation.Summary());
        if (last_dice > state.best_dice) {
          state.best_dice = last_dice;
          state.best_step = done;
          result.best_validation = result.last_validation;
          result.best_step = done;
          improved = true;
        }
      }
    }
    progress.Note(note);
    if (files && improved) {
      RETURN_IF_ERROR(hooks.write_model(ckpt / "best.safetensors", hooks.weights(),
                                        StepMetadata(done, budget.total_steps)));
    }
    RETURN_IF_ERROR(write_checkpoint(done));
    RETURN_IF_ERROR(metrics.Append(record));
    sums.clear();
    epoch_steps = 0;
    if (result.out_of_time) {
      progress.Note(fmt::format("{}: stopped at step {}/{}: out of time", options.label, done,
                                budget.total_steps));
      break;
    }
  }
  progress.Finish();
  result.seconds = progress.ElapsedSeconds();
  result.steps_done = std::max(state.step, steps_done);
  result.finished = result.steps_done >= budget.total_steps;
  if (loader) {
    const data::LoaderStats stats = loader->stats();
    log->debug("{}: waited {:.1f} s for batches over {} steps", options.label,
               stats.consumer_wait_seconds, stats.delivered);
  }

  if (files && result.finished) {
    std::error_code ec;
    const fs::path best = ckpt / "best.safetensors";
    const fs::path source = fs::exists(best, ec) ? best : ckpt / "last.safetensors";
    if (!fs::exists(source, ec)) {
      // Resumed a finished run with nothing on disk; write the current weights.
      RETURN_IF_ERROR(write_checkpoint(result.steps_done));
    }
    ASSIGN_OR_RETURN(common::tensors::TensorMap weights,
                     common::tensors::LoadSafetensors(
                         fs::exists(source, ec) ? source : ckpt / "last.safetensors"));
    result.model_path = options.run_dir / "model.safetensors";
    common::tensors::Metadata extra =
        StepMetadata(source == best ? state.best_step : result.steps_done, budget.total_steps);
    if (source == best) extra["fedjoint.val_dice_mean"] = fmt::format("{:.6f}", state.best_dice);
    RETURN_IF_ERROR(hooks.write_model(result.model_path, weights, extra));
  }
  return result;
}

}  // namespace fedjoint::site_agent::training
