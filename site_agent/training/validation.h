// Validation Dice per structure on held-out subjects' slices: each subject's slices are stacked
// back into its (preprocessed) volume, so the Dice is a per-subject 3D Dice, then averaged over
// subjects. Cheap enough to run every epoch; `fedjoint-site evaluate` measures on the original
// scan grid instead (with HD95 and ASSD).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "common/data/slice_dataset.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent::training {

struct StructureDice {
  std::string joint;
  std::string structure;
  double dice = 0;       // mean over subjects of that joint
  int64_t subjects = 0;  // subjects of that joint in the validation set
};

struct ValidationResult {
  std::vector<StructureDice> structures;  // joints with validation subjects only, model order
  double mean_dice = 0;                   // mean over `structures`; NaN when there is none
  int64_t slices = 0;
  int64_t subjects = 0;

  bool empty() const { return structures.empty(); }
  // {"val_dice_mean": m, "val_dice/<joint>/<structure>": d, ...}; nothing when empty.
  std::map<std::string, double> AsMetrics() const;
  nlohmann::json ToJson() const;
  // "knee/femur 0.931, knee/tibia 0.902, ... (mean 0.874, 2 subjects)"
  std::string Summary() const;
};

// Predicts labels (integer [n, H, W], values 0..C-1 of joint `joint`) for slices that all belong
// to joint `joint`: `images` float [n, 1, H, W], `labels` uint8 [n, H, W] (the truth: a
// segmentation network ignores it, the shape auto-encoder reconstructs it).
using SlicePredictor =
    std::function<at::Tensor(const at::Tensor& images, const at::Tensor& labels, int64_t joint)>;

// Runs `predict` over `dataset` in chunks of `batch_size` slices of one joint each and computes
// per-subject Dice for every structure of `model`'s joints (both empty: 1, as metrics do).
absl::StatusOr<ValidationResult> ValidateSlices(const common::data::SliceDataset& dataset,
                                                const v1::ModelConfig& model,
                                                const SlicePredictor& predict, int64_t batch_size);

}  // namespace fedjoint::site_agent::training
