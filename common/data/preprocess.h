// Preprocessing of scan and label volumes between reading and the network, and back again for
// predictions: canonical orientation, resampling, intensity normalization, slicing, centre
// crop/pad, and label remapping. Pure functions of volumes and tensors (no files, no ITK).
//
// Every step that changes the grid has an exact inverse, so a prediction made on preprocessed
// slices can be put back onto the voxel grid of the scan it came from:
//   ToCanonicalOrientation -> ResampleInPlane -> ToSlices -> CenterCropOrPad -> network
//   -> UndoCenterCropOrPad -> FromSlices -> ResampleToGrid(nearest) -> FromCanonicalOrientation.
#pragma once

#include <array>
#include <cstdint>
#include <map>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/volume.h"

namespace fedjoint::common::data {

// ---------------------------------------------------------------------------------------------
// Canonical orientation.
//
// The canonical orientation is LPS+: index i runs towards the patient's Left, j towards Posterior,
// k towards Superior, so the direction matrix is (close to) identity in ITK's LPS physical space.
// LPS is the physical frame of ITK and DICOM, so canonical grids need no sign conventions, and an
// axial slice [j, i] then shows anterior at the top and the patient's right on the left of the
// image (the radiological view). Reorientation only permutes and flips voxel axes — it never
// interpolates — so it is exact and lossless; any obliquity is kept in the direction matrix.

struct Reorientation {
  // Canonical index axis a is original index axis axis_from[a] (0 = i, 1 = j, 2 = k), reversed
  // when flipped[a].
  std::array<int, 3> axis_from{0, 1, 2};
  std::array<bool, 3> flipped{false, false, false};
  // The grid before reorientation, restored bit for bit by FromCanonicalOrientation.
  Geometry original;
  // Largest angle (degrees) between a canonical index axis and the physical axis it was assigned
  // to: 0 for a signed permutation, larger for oblique scans (callers may warn above a limit).
  double obliquity_degrees = 0.0;

  bool IsIdentity() const;
};

struct CanonicalVolume {
  Volume volume;
  Reorientation reorientation;
};

// Permutes and flips the voxel axes so that each index axis points along the closest LPS axis
// (the assignment of index axes to physical axes that maximises the summed |cosines|). Every voxel
// keeps its physical position: the origin moves to the voxel that becomes (0, 0, 0) and the
// direction columns are permuted and negated accordingly.
absl::StatusOr<CanonicalVolume> ToCanonicalOrientation(const Volume& volume);

// The inverse: takes voxels on the canonical grid (e.g. a predicted label volume of any dtype)
// back to the original grid; the geometry is `reorientation.original` exactly.
absl::StatusOr<Volume> FromCanonicalOrientation(const Volume& canonical,
                                                const Reorientation& reorientation);

// ---------------------------------------------------------------------------------------------
// Resampling. Grids are resampled along their own index axes (no rotation), so the source and
// target must share the direction matrix; reorient first. Linear interpolation is separable
// (trilinear); nearest picks the closest voxel and keeps the dtype (labels). Points up to half a
// voxel outside the source grid take the nearest border value (as ITK does); points further out
// take `outside_value`.

enum class Interpolation { kLinear, kNearest };

struct ResampleOptions {
  Interpolation interpolation = Interpolation::kLinear;
  double outside_value = 0.0;
};

// The grid with the given spacing (entries <= 0 keep that axis) covering the same physical
// extent with the same centre: size = max(1, round(size * spacing / new_spacing)).
Geometry GridWithSpacing(const Geometry& geometry, const std::array<double, 3>& spacing);

// Resamples `volume` onto `target` (same direction). Linear interpolation needs float32 voxels;
// integer labels must use kNearest (InvalidArgument otherwise).
absl::StatusOr<Volume> ResampleToGrid(const Volume& volume, const Geometry& target,
                                      const ResampleOptions& options = {});

// ResampleToGrid(volume, GridWithSpacing(volume.geometry, spacing), options).
absl::StatusOr<Volume> ResampleToSpacing(const Volume& volume, const std::array<double, 3>& spacing,
                                         const ResampleOptions& options = {});

// Resamples the two axes other than `slice_axis` (0 = i, 1 = j, 2 = k) to `spacing` mm, keeping
// the slice axis untouched (slices stay slices).
absl::StatusOr<Volume> ResampleInPlane(const Volume& volume, int slice_axis, double spacing,
                                       const ResampleOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Intensity normalization: clip to the [lower, upper] percentiles of the volume, then z-score with
// the mean and standard deviation of the clipped values, so outliers (metal, air) neither dominate
// the statistics nor survive as extreme inputs.

struct NormalizeOptions {
  double lower_percentile = 0.5;   // in [0, 100]
  double upper_percentile = 99.5;  // in [lower_percentile, 100]
  // A clipped standard deviation below this counts as a constant image: the output is all zeros
  // instead of dividing by ~0.
  double min_std = 1e-6;
};

struct IntensityStats {
  double lower = 0.0;  // clip bounds (the percentiles, linearly interpolated as numpy does)
  double upper = 0.0;
  double mean = 0.0;  // of the clipped values
  double std = 0.0;   // population standard deviation of the clipped values
};

// Statistics of a float32 image (any shape); InvalidArgument for empty or non-finite input or
// percentiles out of range.
absl::StatusOr<IntensityStats> ComputeIntensityStats(const at::Tensor& image,
                                                     const NormalizeOptions& options = {});

// (clamp(image, lower, upper) - mean) / std; all zeros when std < options.min_std.
at::Tensor ApplyIntensityNormalization(const at::Tensor& image, const IntensityStats& stats,
                                       const NormalizeOptions& options = {});

// ComputeIntensityStats then ApplyIntensityNormalization.
absl::StatusOr<at::Tensor> NormalizeIntensity(const at::Tensor& image,
                                              const NormalizeOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Slicing. `axis` is a voxel index axis (0 = i, 1 = j, 2 = k; after canonical orientation that is
// sagittal, coronal, axial). Voxels [k, j, i] become contiguous slices [N, H, W]:
//   axis 2 -> [k, j, i],  axis 1 -> [j, k, i],  axis 0 -> [i, k, j].
absl::StatusOr<at::Tensor> ToSlices(const at::Tensor& voxels, int axis);
// The inverse: slices [N, H, W] taken along `axis` back to contiguous voxels [k, j, i].
absl::StatusOr<at::Tensor> FromSlices(const at::Tensor& slices, int axis);

// Centre crop or pad of the last two dimensions to height x width (each independently: a
// dimension is cropped if larger, padded with `pad_value` if smaller; the extra voxel of an odd
// difference goes after). Works on [H, W], [N, H, W], [N, C, H, W], any dtype.
absl::StatusOr<at::Tensor> CenterCropOrPad(const at::Tensor& image, int64_t height, int64_t width,
                                           double pad_value = 0.0);
// The inverse, for predictions: back to the size before CenterCropOrPad. Voxels that were cropped
// away are lost and come back as `fill_value` (background for labels).
absl::StatusOr<at::Tensor> UndoCenterCropOrPad(const at::Tensor& image, int64_t original_height,
                                               int64_t original_width, double fill_value = 0.0);

// ---------------------------------------------------------------------------------------------
// Label remapping from a dataset's label values to the joint's structure indices.

struct LabelMapping {
  // Dataset label value -> structure index (0 = background, indices in [0, 255]). Value 0 maps to
  // background unless listed.
  std::map<int64_t, int64_t> value_to_index;
  // Values neither listed nor 0: an error listing them (false) or background (true).
  bool unlisted_to_background = false;
};

// Returns uint8 structure indices with the shape of `labels` (uint8, int16, int32 or int64).
// InvalidArgument lists every unlisted value present (unless unlisted_to_background) and any
// index outside [0, 255].
absl::StatusOr<at::Tensor> RemapLabels(const at::Tensor& labels, const LabelMapping& mapping);

}  // namespace fedjoint::common::data
