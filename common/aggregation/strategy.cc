#include "common/aggregation/strategy.h"

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
  return absl::InvalidArgumentError(
      absl::StrCat("unknown weighting '", std::string(text), "' (expected samples or uniform)"));
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
  options.server_learning_rate =
      phase.server_learning_rate() > 0 ? phase.server_learning_rate() : 1.0;
  options.limits = job_limits;
  if (phase.max_update_norm() > 0) options.limits.max_update_norm = phase.max_update_norm();
  options.fold = std::move(fold);
  return options;
}

double UpdateWeight(Weighting weighting, int64_t num_samples) {
  return weighting == Weighting::kUniform ? 1.0 : static_cast<double>(num_samples);
}

RoundAggregation::RoundAggregation(std::vector<SharedTensor> start, StrategyOptions options,
                                   std::vector<std::vector<float>> recycled)
    : start_values_(StartValues(start)),
      names_(Names(start)),
      options_(std::move(options)),
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
  if (options_.server_learning_rate != 1.0) {
    for (size_t i = 0; i < result.tensors.size(); ++i) {
      if (absl::Status s =
              ApplyServerStep(start_values_[i], result.tensors[i], options_.server_learning_rate);
          !s.ok()) {
        return absl::InternalError(absl::StrCat(names_[i], ": ", s.message()));
      }
    }
  }
  result.prototypes = prototypes_.Finalize();
  return result;
}

}  // namespace fedjoint::common::aggregation
