#include "site_agent/training/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace fedjoint::site_agent::training {

absl::StatusOr<Budget> MakeBudget(const v1::LocalTrainingConfig& config, int64_t steps_per_epoch) {
  Budget budget;
  budget.steps_per_epoch = std::max<int64_t>(1, steps_per_epoch);
  if (config.steps() > 0) {
    budget.total_steps = config.steps();
  } else if (config.epochs() > 0) {
    budget.total_steps = static_cast<int64_t>(config.epochs()) * budget.steps_per_epoch;
  } else {
    return absl::InvalidArgumentError(
        "training.epochs and training.steps are both 0: set a training budget");
  }
  return budget;
}

double LearningRateAt(const v1::OptimizerConfig& optimizer, int64_t step, int64_t total_steps) {
  const double lr = optimizer.learning_rate();
  const int64_t warmup = std::max<int64_t>(0, optimizer.warmup_steps());
  if (step < warmup) {
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
  }
  const int64_t span = std::max<int64_t>(1, total_steps - warmup);
  const double t =
      std::clamp(static_cast<double>(step - warmup) / static_cast<double>(span), 0.0, 1.0);
  const std::string& schedule = optimizer.schedule();
  if (schedule == "cosine") return lr * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
  if (schedule == "poly") {
    const double power = optimizer.poly_power() > 0 ? optimizer.poly_power() : 0.9;
    return lr * std::pow(1.0 - t, power);
  }
  return lr;  // "constant" (and unset)
}

double LearningRateInRound(const v1::OptimizerConfig& optimizer, int64_t step, int64_t run_steps,
                           int64_t round, int64_t rounds) {
  if (rounds <= 0) return LearningRateAt(optimizer, step, run_steps);
  return LearningRateAt(optimizer, round * run_steps + step, rounds * run_steps);
}

}  // namespace fedjoint::site_agent::training
