#include "common/aggregation/strategy.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::aggregation {
namespace {

std::vector<std::span<const float>> StartValues(const std::vector<SharedTensor>& start) {
  std::vector<std::span<const float>> values;
  values.reserve(start.size());
  for (const SharedTensor& t : start) values.push_back(t.start.values);
  return values;
}

std::vector<std::string> Names(const std::vector<SharedTensor>& start) {
  std::vector<std::string> names;
  names.reserve(start.size());
  for (const SharedTensor& t : start) names.push_back(t.start.name);
  return names;
}

}  // namespace

absl::StatusOr<Weighting> ParseWeighting(std::string_view text) {
  if (text == "samples" || text.empty()) return Weighting::kSamples;
  if (text == "uniform") return Weighting::kUniform;
  if (text == "sqrt") return Weighting::kSqrtSamples;
  return absl::InvalidArgumentError(absl::StrCat("unknown weighting '", std::string(text),
                                                 "' (expected samples, uniform or sqrt)"));
}

absl::StatusOr<ServerOptimizer> ParseServerOptimizer(std::string_view text) {
  if (text == "sgd" || text.empty()) return ServerOptimizer::kSgd;
  if (text == "momentum") return ServerOptimizer::kMomentum;
  if (text == "adam") return ServerOptimizer::kAdam;
  return absl::InvalidArgumentError(absl::StrCat("unknown server optimizer '", std::string(text),
                                                 "' (expected sgd, momentum or adam)"));
}

absl::StatusOr<StrategyOptions> StrategyOptionsFor(const v1::PhaseConfig& phase,
                                                   const UpdateLimits& job_limits,
                                                   FoldOptions fold) {
  StrategyOptions options;
  absl::StatusOr<Weighting> weighting = ParseWeighting(phase.weighting());
  if (!weighting.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("phase '", phase.name(), "': ", weighting.status().message()));
  }
  options.weighting = *weighting;
  absl::StatusOr<ServerOptimizer> optimizer = ParseServerOptimizer(phase.server_optimizer());
  if (!optimizer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("phase '", phase.name(), "': ", optimizer.status().message()));
  }
  options.server_optimizer = *optimizer;
  options.server_learning_rate =
      phase.server_learning_rate() > 0 ? phase.server_learning_rate() : 1.0;
  // Unset fields (0) take the documented defaults; the configuration parser fills them anyway.
  if (phase.server_beta1() > 0) options.server_beta1 = phase.server_beta1();
  if (phase.server_beta2() > 0) options.server_beta2 = phase.server_beta2();
  if (phase.server_epsilon() > 0) options.server_epsilon = phase.server_epsilon();
  options.limits = job_limits;
  if (phase.max_update_norm() > 0) options.limits.max_update_norm = phase.max_update_norm();
  options.fold = std::move(fold);
  return options;
}

double UpdateWeight(Weighting weighting, int64_t num_samples) {
  switch (weighting) {
    case Weighting::kUniform:
      return 1.0;
    case Weighting::kSqrtSamples:
      return std::sqrt(static_cast<double>(num_samples));
    case Weighting::kSamples:
      break;
  }
  return static_cast<double>(num_samples);
}

absl::Status ApplyServerOptimizer(std::span<const std::span<const float>> start,
                                  std::vector<std::vector<float>>& average,
                                  const StrategyOptions& options, ServerState& state,
                                  std::span<const std::string> names) {
  auto label = [&](size_t i) {
    return i < names.size() ? absl::StrCat("'", names[i], "'") : absl::StrCat("tensor ", i);
  };
  if (start.size() != average.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server step: ", start.size(), " start tensors, ", average.size(), " averaged"));
  }
  if (options.server_optimizer == ServerOptimizer::kSgd) {
    for (size_t i = 0; i < start.size(); ++i) {
      if (absl::Status s = ApplyServerStep(start[i], average[i], options.server_learning_rate);
          !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(label(i), ": ", s.message()));
      }
    }
    return absl::OkStatus();
  }
  const bool adam = options.server_optimizer == ServerOptimizer::kAdam;
  auto fits = [&](const std::vector<std::vector<float>>& moments) {
    if (moments.size() != start.size()) return false;
    for (size_t i = 0; i < start.size(); ++i) {
      if (moments[i].size() != start[i].size()) return false;
    }
    return true;
  };
  auto reset = [&](std::vector<std::vector<float>>& moments) {
    moments.assign(start.size(), {});
    for (size_t i = 0; i < start.size(); ++i) moments[i].assign(start[i].size(), 0.0f);
  };
  if (!fits(state.first)) reset(state.first);
  if (adam && !fits(state.second)) reset(state.second);
  if (!adam) state.second.clear();
  const double lr = options.server_learning_rate, b1 = options.server_beta1;
  const double b2 = options.server_beta2, eps = options.server_epsilon;
  for (size_t i = 0; i < start.size(); ++i) {
    if (average[i].size() != start[i].size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          label(i), ": ", start[i].size(), " start values, ", average[i].size(), " averaged"));
    }
    std::vector<float>& m = state.first[i];
    for (size_t j = 0; j < start[i].size(); ++j) {
      const double d = static_cast<double>(average[i][j]) - start[i][j];
      double step;
      if (adam) {
        float& v = state.second[i][j];
        m[j] = static_cast<float>(b1 * m[j] + (1 - b1) * d);
        v = static_cast<float>(b2 * v + (1 - b2) * d * d);
        step = m[j] / (std::sqrt(static_cast<double>(v)) + eps);
      } else {
        m[j] = static_cast<float>(b1 * m[j] + d);
        step = m[j];
      }
      const auto x = static_cast<float>(start[i][j] + lr * step);
      if (!std::isfinite(x) || !std::isfinite(m[j])) {
        return absl::InvalidArgumentError(
            absl::StrCat(label(i), ": the server step gave a non-finite value"));
      }
      average[i][j] = x;
    }
  }
  return absl::OkStatus();
}

RoundAggregation::RoundAggregation(std::vector<SharedTensor> start, StrategyOptions options,
                                   std::vector<std::vector<float>> recycled, ServerState state)
    : start_values_(StartValues(start)),
      names_(Names(start)),
      options_(std::move(options)),
      state_(std::move(state)),
      sum_(std::move(start), options_.limits, options_.fold, std::move(recycled)) {}

absl::Status RoundAggregation::Add(const std::string& site,
                                   std::span<const std::string> site_joints,
                                   std::span<const TensorView> update, int64_t num_samples,
                                   std::span<const Prototype> prototypes, ValueCheck check) {
  if (num_samples < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("update from site '", site, "': negative sample count ", num_samples));
  }
  // Everything is checked before anything is added, so a refused update leaves no trace.
  if (absl::Status s = prototypes_.Check(site, site_joints, prototypes); !s.ok()) return s;
  if (absl::Status s =
          sum_.Add(site, site_joints, update, UpdateWeight(options_.weighting, num_samples), check);
      !s.ok()) {
    return s;
  }
  return prototypes_.Add(site, site_joints, prototypes);
}

absl::StatusOr<RoundAggregation::Result> RoundAggregation::Finalize() {
  Result result;
  result.tensors = sum_.Finalize();
  const bool plain_average =
      options_.server_optimizer == ServerOptimizer::kSgd && options_.server_learning_rate == 1.0;
  if (!plain_average) {
    if (absl::Status s =
            ApplyServerOptimizer(start_values_, result.tensors, options_, state_, names_);
        !s.ok()) {
      return absl::InternalError(std::string(s.message()));
    }
  }
  result.state = std::move(state_);
  result.prototypes = prototypes_.Finalize();
  return result;
}

}  // namespace fedjoint::common::aggregation
