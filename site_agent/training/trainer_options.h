// What both trainers (segmentation, shape prior) are given, and the one place their options
// become a training-loop run: loop options, hooks that write model files, and the summary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/data/batch_sampler.h"
#include "fedjoint/v1/config.pb.h"
#include "site_agent/training/training_loop.h"

namespace fedjoint::site_agent::training {

struct TrainerOptions {
  v1::ModelConfig model;
  v1::LocalTrainingConfig training;
  uint64_t seed = 1;  // batches and augmentation (the network's init uses `init_seed`)
  uint64_t init_seed = 0;
  int threads = 0;  // intra-op threads; 0 = every core
  int loader_threads = 2;
  std::filesystem::path run_dir;  // checkpoints and metrics.jsonl; empty for none
  bool resume = true;
  bool show_progress = true;
  int64_t stop_at_step = -1;  // see LoopOptions
  double stop_at_unix_s = 0;  // see LoopOptions
  std::function<void(double)> on_progress;
  std::string label = "segmentation";
  // Convolution weights and training batches in channels-last layout: ~25% faster training steps
  // on CPU with LibTorch 1.13's oneDNN convolutions at this project's small widths (see
  // docs/methods.md). Saved weights are always standard contiguous tensors.
  bool channels_last = true;
  // This run as round `schedule_round` (0-based) of `schedule_rounds` equal runs that share one
  // learning-rate schedule (a phase-wide schedule in a federation); 0 rounds: its own schedule.
  int64_t schedule_round = 0;
  int64_t schedule_rounds = 0;
  // Parameters (by name) that do not train: no gradient, not in the optimizer. Null: all train.
  std::function<bool(std::string_view)> frozen;
};

struct TrainSummary {
  LoopResult loop;
  std::map<std::string, double> metrics;  // loss terms of the last epoch, val_dice_*, steps, ...
};

// Runs the shared loop for a trainer: `hooks` needs step, weights, load_weights and (optionally)
// validate; write_model is filled in here (weights + `options.model` as metadata). `label`
// replaces options.label in progress and logs.
absl::StatusOr<TrainSummary> RunTrainer(const TrainerOptions& options,
                                        const v1::LocalTrainingConfig& training,
                                        const std::string& label,
                                        std::shared_ptr<const common::data::BatchSampler> sampler,
                                        torch::optim::Optimizer& optimizer, LoopHooks hooks,
                                        int64_t train_slices);

}  // namespace fedjoint::site_agent::training
