// The loop both trainers share: budget, learning-rate schedule, background batch loading,
// validation every `validation_interval` epochs, best/last checkpoints, resuming, progress and the
// metrics log. What a step computes is the trainer's (LoopHooks).
//
// Run folder (when LoopOptions::run_dir is set):
//   checkpoint/last.safetensors       weights after the last finished epoch (model file + step)
//   checkpoint/last.optimizer.pt      optimizer state at that step (LibTorch archive)
//   checkpoint/best.safetensors       weights with the best validation mean Dice so far
//   checkpoint/state.json             step, best score, and the run's fingerprint; written last,
//                                     so it only ever points at complete files
//   metrics.jsonl                     one JSON object per epoch (losses, lr, speed, validation)
//   model.safetensors                 at the end: the best checkpoint (the last one when nothing
//                                     was validated)
// Batches are a pure function of (seed, epoch, batch), the schedule of the step number and the
// optimizer state is saved, so a resumed run continues exactly as an uninterrupted one would.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/data/batch_sampler.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/config.pb.h"
#include "site_agent/training/validation.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace fedjoint::site_agent::training {

struct LoopOptions {
  std::string label = "train";  // progress and log prefix
  v1::LocalTrainingConfig training;
  int loader_threads = 2;
  std::filesystem::path run_dir;  // empty: no files at all (federated rounds)
  bool resume = true;             // continue from run_dir's checkpoint when there is one
  bool show_progress = true;
  // Stop (with a checkpoint, as an interruption would) once this many steps are done; -1: run to
  // the end of the budget. For tests of resuming, and for callers with a deadline.
  int64_t stop_at_step = -1;
  // Stop after the step during which this Unix time (s) passes; 0: no limit. Federated rounds
  // have a deadline: an update that arrives after it is refused, so training stops in time for
  // the upload, with the steps done so far (the last partial epoch is summarized, not validated).
  double stop_at_unix_s = 0;
  std::function<void(double)> on_progress;  // fraction of the budget done
  // This run is round `schedule_round` (0-based) of `schedule_rounds` equal runs that share one
  // learning-rate schedule: step s of this run is step schedule_round * budget + s of a schedule
  // over schedule_rounds * budget steps. 0 rounds: the schedule spans this run alone.
  int64_t schedule_round = 0;
  int64_t schedule_rounds = 0;
  // Identifies the run's configuration (model, training, seed): a checkpoint written under a
  // different fingerprint is refused instead of silently continued.
  std::string fingerprint;
};

struct LoopHooks {
  // Trains on `batch` with one optimizer step; returns named losses, "loss" being the total.
  std::function<absl::StatusOr<std::map<std::string, double>>(const common::data::Batch&)> step;
  // Null: no validation.
  std::function<absl::StatusOr<ValidationResult>()> validate;
  std::function<common::tensors::TensorMap()> weights;
  std::function<absl::Status(const common::tensors::TensorMap&)> load_weights;
  // Writes a model file (weights + the model's config metadata + `extra`).
  std::function<absl::Status(const std::filesystem::path&, const common::tensors::TensorMap&,
                             const common::tensors::Metadata& extra)>
      write_model;
};

struct LoopResult {
  int64_t start_step = 0;  // > 0 when resumed
  int64_t steps_done = 0;  // steps finished overall (== total_steps unless stopped early)
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 0;
  bool finished = false;
  bool out_of_time = false;                   // stopped early at stop_at_unix_s
  double seconds = 0;                         // wall time of this process's part
  std::vector<double> epoch_losses;           // mean total loss of each epoch run in this process
  std::map<std::string, double> last_losses;  // means over the last epoch
  ValidationResult last_validation;
  ValidationResult best_validation;
  int64_t best_step = -1;
  std::filesystem::path model_path;  // run_dir/model.safetensors when written
};

absl::StatusOr<LoopResult> RunTrainingLoop(
    const LoopOptions& options, std::shared_ptr<const common::data::BatchSampler> sampler,
    torch::optim::Optimizer& optimizer, LoopHooks& hooks);

// The batch sampler a training config asks for (domain-balanced, augmentation as configured).
absl::StatusOr<std::shared_ptr<const common::data::BatchSampler>> MakeSampler(
    std::shared_ptr<const common::data::SliceDataset> dataset,
    const v1::LocalTrainingConfig& training, uint64_t seed);

// A stable fingerprint of a run's configuration (hex SHA-256 of the serialized messages).
std::string RunFingerprint(const v1::ModelConfig& model, const v1::LocalTrainingConfig& training,
                           uint64_t seed);

// Intra-op threads: `threads` when > 0, else every core.
void SetTrainingThreads(int threads);

// An optimizer's state (moments, momentum, step counts) as a LibTorch archive, written atomically;
// read back into an optimizer over the same parameters. Errors name the file.
absl::Status SaveOptimizer(torch::optim::Optimizer& optimizer, const std::filesystem::path& path);
absl::Status LoadOptimizer(torch::optim::Optimizer& optimizer, const std::filesystem::path& path);

// AdamW or SGD (with momentum) over `parameters`, as the config says; the learning rate is set
// per step by the loop.
absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> MakeOptimizer(
    std::vector<at::Tensor> parameters, const v1::OptimizerConfig& config);

}  // namespace fedjoint::site_agent::training
