// Per-structure overlap and surface-distance metrics of a predicted label volume against the
// truth, in millimetres (voxel spacing), on full 3D volumes.
//
// Definitions (surfaces and directed distances: surface_distance.h):
//  - Dice = 2|P ∩ T| / (|P| + |T|); 1 when both are empty (nothing to find, nothing found).
//  - HD = the largest directed surface distance in either direction.
//  - HD95 = the 95th percentile of the union of both directed distance sets (MedPy's hd95:
//    numpy.percentile(concatenate(d_PT, d_TP), 95), linear interpolation between order
//    statistics). plastimatch's "Percent (0.95) Hausdorff distance (boundary)" differs: it
//    averages the two directed 95th percentiles, each the order statistic of rank
//    floor(0.95·n − 1) (0-based) without interpolation; the two agree when both directions have
//    the same distribution (e.g. a translated structure), and the test suite reproduces
//    plastimatch's figure exactly from our directed distances.
//  - ASSD = the mean of the union of both directed distance sets
//    (Σ d_PT + Σ d_TP) / (|S_P| + |S_T|) (Heimann et al. 2009; MONAI's symmetric surface
//    distance). MedPy and plastimatch ("Avg average Hausdorff distance (boundary)") average the
//    two directed means instead, which weights the smaller surface more.
//  - Empty structures: both empty → HD, HD95, ASSD = NaN (nothing to measure); exactly one
//    empty → +infinity (a missed or hallucinated structure is infinitely far). MetricTable
//    reports such values as "nan"/"inf" and leaves them out of means.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/data/volume.h"

namespace fedjoint::common::metrics {

struct StructureMetrics {
  std::string structure;  // name, as given
  int64_t label = 0;
  int64_t prediction_voxels = 0;
  int64_t truth_voxels = 0;
  int64_t overlap_voxels = 0;  // |P ∩ T|; with the counts gives sensitivity, precision, RAVD
  double dice = 0;
  double hd = 0;    // mm
  double hd95 = 0;  // mm
  double assd = 0;  // mm
};

// A structure to evaluate: its value in the label volumes and its name (e.g. 1, "femur").
struct Structure {
  int64_t label = 0;
  std::string name;
};

// q-th percentile (q in [0, 100]) with numpy's default linear interpolation; NaN when empty.
double Percentile(std::vector<double> values, double q);

// Core on binary masks (non-zero = inside), layout as Geometry: size (i, j, k), i fastest.
StructureMetrics ComputeMaskMetrics(std::span<const uint8_t> prediction,
                                    std::span<const uint8_t> truth,
                                    const std::array<int64_t, 3>& size,
                                    const std::array<double, 3>& spacing);

// prediction, truth: integer label tensors [k, j, i] of equal shape (uint8, or int16/int32/int64
// for datasets with more labels); spacing (mm) along (i, j, k). The structure is label == label.
absl::StatusOr<StructureMetrics> ComputeLabelMetrics(const at::Tensor& prediction,
                                                     const at::Tensor& truth, int64_t label,
                                                     const std::array<double, 3>& spacing);

// Every structure of `structures`, on volumes whose geometries must agree (size, spacing,
// origin, direction): a prediction that does not overlay the truth is an error, not a score.
absl::StatusOr<std::vector<StructureMetrics>> ComputeSegmentationMetrics(
    const data::Volume& prediction, const data::Volume& truth,
    std::span<const Structure> structures);

}  // namespace fedjoint::common::metrics
