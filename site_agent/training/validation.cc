#include "site_agent/training/validation.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

namespace fedjoint::site_agent::training {

std::map<std::string, double> ValidationResult::AsMetrics() const {
  std::map<std::string, double> metrics;
  if (empty()) return metrics;
  metrics["val_dice_mean"] = mean_dice;
  for (const StructureDice& s : structures) {
    metrics[fmt::format("val_dice/{}/{}", s.joint, s.structure)] = s.dice;
  }
  return metrics;
}

nlohmann::json ValidationResult::ToJson() const {
  nlohmann::json out = nlohmann::json::object();
  if (empty()) return out;
  out["mean_dice"] = mean_dice;
  out["subjects"] = subjects;
  out["slices"] = slices;
  nlohmann::json dice = nlohmann::json::object();
  for (const StructureDice& s : structures) dice[s.joint][s.structure] = s.dice;
  out["dice"] = dice;
  return out;
}

std::string ValidationResult::Summary() const {
  if (empty()) return "no validation subject";
  std::vector<std::string> parts;
  for (const StructureDice& s : structures) {
    parts.push_back(fmt::format("{}/{} {:.3f}", s.joint, s.structure, s.dice));
  }
  return fmt::format("{} (mean {:.3f}, {} subject(s))", fmt::join(parts, ", "), mean_dice,
                     subjects);
}

absl::StatusOr<ValidationResult> ValidateSlices(const common::data::SliceDataset& dataset,
                                                const v1::ModelConfig& model,
                                                const SlicePredictor& predict, int64_t batch_size) {
  ValidationResult result;
  result.mean_dice = std::numeric_limits<double>::quiet_NaN();
  if (dataset.size() == 0) return result;
  int64_t max_classes = 1;
  for (const auto& joint : model.joints()) {
    max_classes = std::max<int64_t>(max_classes, joint.structures_size() + 1);
  }
  const auto num_subjects = static_cast<int64_t>(dataset.subject_ids.size());
  // Per subject and class: |P ∩ T|, |P|, |T| summed over the subject's slices.
  at::Tensor inter = torch::zeros({num_subjects, max_classes}, torch::kDouble);
  at::Tensor pred_count = torch::zeros_like(inter);
  at::Tensor truth_count = torch::zeros_like(inter);
  std::vector<int64_t> joint_of_subject(static_cast<size_t>(num_subjects), -1);
  const auto* domains = dataset.domains.data_ptr<int64_t>();
  const auto* subjects = dataset.subjects.data_ptr<int64_t>();
  for (int64_t i = 0; i < dataset.size(); ++i) joint_of_subject[subjects[i]] = domains[i];

  try {
    torch::NoGradGuard no_grad;
    int64_t start = 0;
    while (start < dataset.size()) {
      // A chunk of consecutive slices of one joint.
      int64_t end = start + 1;
      while (end < dataset.size() && end - start < batch_size && domains[end] == domains[start]) {
        ++end;
      }
      const int64_t joint = domains[start];
      const int64_t classes = model.joints(static_cast<int>(joint)).structures_size() + 1;
      at::Tensor images = dataset.images.narrow(0, start, end - start).unsqueeze(1);
      at::Tensor truth = dataset.labels.narrow(0, start, end - start);
      at::Tensor prediction = predict(images, truth, joint).to(torch::kLong);
      at::Tensor truth_long = truth.to(torch::kLong);
      at::Tensor subject_index = dataset.subjects.narrow(0, start, end - start);
      at::Tensor p1 = torch::one_hot(prediction.clamp(0, classes - 1), max_classes)
                          .flatten(1, 2)
                          .to(torch::kDouble);  // [n, HW, C]
      at::Tensor t1 = torch::one_hot(truth_long.clamp(0, max_classes - 1), max_classes)
                          .flatten(1, 2)
                          .to(torch::kDouble);
      inter.index_add_(0, subject_index, (p1 * t1).sum(1));
      pred_count.index_add_(0, subject_index, p1.sum(1));
      truth_count.index_add_(0, subject_index, t1.sum(1));
      result.slices += end - start;
      start = end;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(fmt::format("validation failed: {}", e.what_without_backtrace()));
  }

  at::Tensor denominator = pred_count + truth_count;
  at::Tensor dice = torch::where(denominator.gt(0), 2 * inter / denominator.clamp_min(1),
                                 torch::ones_like(denominator));
  double sum = 0;
  for (int j = 0; j < model.joints_size(); ++j) {
    std::vector<int64_t> members;
    for (int64_t s = 0; s < num_subjects; ++s) {
      if (joint_of_subject[static_cast<size_t>(s)] == j) members.push_back(s);
    }
    if (members.empty()) continue;
    at::Tensor rows = dice.index_select(0, torch::tensor(members, torch::kLong));
    for (int k = 0; k < model.joints(j).structures_size(); ++k) {
      StructureDice entry;
      entry.joint = model.joints(j).name();
      entry.structure = model.joints(j).structures(k);
      entry.subjects = static_cast<int64_t>(members.size());
      entry.dice = rows.select(1, k + 1).mean().item<double>();
      sum += entry.dice;
      result.structures.push_back(entry);
    }
    result.subjects += static_cast<int64_t>(members.size());
  }
  if (!result.structures.empty()) {
    result.mean_dice = sum / static_cast<double>(result.structures.size());
  }
  return result;
}

}  // namespace fedjoint::site_agent::training
