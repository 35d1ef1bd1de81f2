// The in-memory training set of a site: every subject of a manifest read, preprocessed the same way
// segmentation preprocesses a scan (canonical orientation, in-plane resampling, per-volume
// intensity normalization, slicing, centre crop/pad), and kept as 2D slices with their structure
// labels, domain (joint) id and relative slice position. Also the subject-level splits
// (train/validation, k-fold): slices of one subject never end up on both sides.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/data/manifest.h"
#include "common/data/preprocess.h"

namespace fedjoint::common::data {

struct SliceDatasetOptions {
  // Voxel axis of the canonical (LPS) grid to slice along: 0 sagittal, 1 coronal, 2 axial.
  int slice_axis = 2;
  // In-plane spacing (mm) to resample to; <= 0 keeps each scan's native spacing.
  double in_plane_spacing = 0.0;
  // Network input size: slices are centre-cropped or padded to height x width.
  int64_t height = 128;
  int64_t width = 128;
  NormalizeOptions normalize;
  // Keep subjects without a label file (their slices have labeled = false and all-zero labels),
  // e.g. for self-supervised terms. Off: they are left out (and counted in the log).
  bool include_unlabeled = false;
  // Fraction in [0, 1] of the labeled slices without any structure voxel to keep, per subject.
  // The kept ones are spread evenly over the subject's empty slices (no randomness), so the scan's
  // whole extent stays represented. Slices of unlabeled subjects are always kept.
  double background_slice_fraction = 1.0;
};

struct SliceDataset {
  at::Tensor images;      // float32 [N, H, W], normalized intensities
  at::Tensor labels;      // uint8 [N, H, W], structure indices (0 background; all 0 if unlabeled)
  at::Tensor domains;     // int64 [N], index into `joints`
  at::Tensor subjects;    // int64 [N], index into `subject_ids`
  at::Tensor positions;   // float32 [N], (i + 1) / n for slice i of a volume with n slices
  at::Tensor labeled;     // bool [N], the subject has a label volume
  at::Tensor foreground;  // bool [N], the slice has at least one structure voxel
  std::vector<std::string> joints;       // domain id -> joint (the model's domain order)
  std::vector<std::string> subject_ids;  // subjects that contributed slices, in manifest order
  // Per domain id: the number of output classes (structures + background), from the manifest's
  // label map of that joint (0 when the manifest has none).
  std::vector<int64_t> num_classes;

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

// Reads and preprocesses every subject of `manifest`. `joints` is the model's domain order: a
// subject's domain id is the position of its joint there, and a subject whose joint is missing is
// an error (nothing is skipped silently). Labels are remapped from the manifest's label values to
// structure indices 1..K in ascending label-value order (Manifest::Structures); a label value
// absent from the manifest's map is an error. Errors name the subject, its manifest line and the
// file. Padding after crop/pad is the volume's lowest normalized intensity (background), not 0
// (which is the mean after z-scoring).
absl::StatusOr<SliceDataset> BuildSliceDataset(const Manifest& manifest,
                                               const std::vector<std::string>& joints,
                                               const SliceDatasetOptions& options = {});

// Subject indices (into manifest.subjects, ascending) on each side of a split.
struct SubjectSplit {
  std::vector<size_t> train;
  std::vector<size_t> validation;
};

// Random split by subject, stratified by joint: of each joint's labeled subjects,
// round(validation_fraction * n) go to validation (at most n - 1, so every joint keeps a training
// subject); unlabeled subjects always train. Deterministic for a given seed and manifest.
absl::StatusOr<SubjectSplit> SplitSubjects(const Manifest& manifest, double validation_fraction,
                                           uint64_t seed);

// k-fold cross-validation by subject: labeled subjects are shuffled per joint and dealt to the
// folds in turn (continuing across joints, so fold sizes differ by at most one); split f validates
// on fold f and trains on the rest, unlabeled subjects included. Needs at least `folds` labeled
// subjects.
absl::StatusOr<std::vector<SubjectSplit>> KFoldSplits(const Manifest& manifest, int folds,
                                                      uint64_t seed);

// The manifest restricted to the subjects at `indices` (label maps kept whole).
Manifest SelectSubjects(const Manifest& manifest, std::span<const size_t> indices);

}  // namespace fedjoint::common::data
