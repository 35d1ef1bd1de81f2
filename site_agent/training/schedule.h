// Training budget and learning-rate schedule: pure functions of the config and the step number,
// so a resumed run continues with exactly the rates it would have had.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent::training {

struct Budget {
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 1;
  int64_t epochs() const { return (total_steps + steps_per_epoch - 1) / steps_per_epoch; }
};

// `steps` when set (> 0), else epochs x steps_per_epoch. InvalidArgument when both are 0.
absl::StatusOr<Budget> MakeBudget(const v1::LocalTrainingConfig& config, int64_t steps_per_epoch);

// Learning rate for optimizer step `step` (0-based) of `total_steps`: linear warm-up over
// optimizer.warmup_steps (from lr / (warmup+1) up to lr), then the schedule over the remaining
// steps: constant; cosine lr * (1 + cos(pi * t)) / 2; poly lr * (1 - t)^poly_power, with t the
// fraction of the post-warm-up steps already done.
double LearningRateAt(const v1::OptimizerConfig& optimizer, int64_t step, int64_t total_steps);

// Step `step` of a run of `run_steps` steps that is round `round` (0-based) of `rounds` equal
// runs sharing one schedule (a phase-wide schedule in a federation): the rate at step
// round * run_steps + step of a schedule over rounds * run_steps steps. rounds <= 0: the run's own
// schedule, LearningRateAt(optimizer, step, run_steps).
double LearningRateInRound(const v1::OptimizerConfig& optimizer, int64_t step, int64_t run_steps,
                           int64_t round, int64_t rounds);

}  // namespace fedjoint::site_agent::training
