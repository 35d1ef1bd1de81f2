// The site's own normalization tensors in a model to segment with.
//
// Under the default scope rules ('*norm*' site) every BatchNorm tensor (affine weight and bias,
// running mean and variance) stays at the site that trained it: the coordinator's global model has
// none, and `pull-model` merges in the site's own. A site that never trained has nothing to merge,
// so its model lacks them; segmenting with made-up statistics would give plausible-looking
// garbage, so `segment` refuses and names the tensors (see MissingNormTensors) unless asked to
// recalibrate on the site's own scans (Segmenter::RecalibrateNormalization): then the missing
// tensors start from a fresh network's values (CompleteWithInitialNorm: weight 1, bias 0) and the
// running statistics are re-estimated. The affine weight and bias cannot be recovered without
// training: that fallback is an approximation, and the command says so.
//
// Measured (knee phantoms; default network trained 500 steps on 10 "pd" subjects, segmenting 4
// "t2fs" subjects, statistics re-estimated on 4 other t2fs scans; femur+tibia mean Dice):
//   the training site's own statistics, unchanged         0.512
//   its affine weights + re-estimated running statistics  0.434
//   no site tensors: weights 1/0 + re-estimated stats      0.423
// Per-volume z-scoring already removes most of the contrast shift, and re-estimation lost Dice;
// so `segment` never recalibrates on its own, and a site that never trained gets an error that
// offers --recalibrate-norm rather than a silent fallback.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent::inference {

// The normalization tensors (names with ".norms.<domain>.") of `config`'s network that `weights`
// lacks, for the domain `joint` (the joint's own, or "shared" in the shared variant).
absl::StatusOr<std::vector<std::string>> MissingNormTensors(
    const v1::ModelConfig& config, const common::tensors::TensorMap& weights,
    const std::string& joint);

// `weights` plus, for every tensor of `config`'s network it lacks that is a normalization tensor,
// the value of a freshly initialized network. Other missing tensors stay missing (the strict load
// reports them).
absl::StatusOr<common::tensors::TensorMap> CompleteWithInitialNorm(
    const v1::ModelConfig& config, const common::tensors::TensorMap& weights);

}  // namespace fedjoint::site_agent::inference
