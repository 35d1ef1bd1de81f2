#include "common/data/preprocess.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace fedjoint::common::data {
namespace {

// The tensor dimension holding voxel index axis c (voxels are [k, j, i]).
int64_t TensorDim(int axis) { return 2 - axis; }

absl::Status CheckAxis(int axis, std::string_view what) {
  if (axis < 0 || axis > 2) {
    return absl::InvalidArgumentError(
        fmt::format("{}: axis {} is not a voxel axis (0 = i, 1 = j, 2 = k)", what, axis));
  }
  return absl::OkStatus();
}

bool IsIntegral(at::ScalarType dtype) { return at::isIntegralType(dtype, /*includeBool=*/false); }

// The expected tensor shape [size_k, size_j, size_i] of a grid.
std::vector<int64_t> ShapeOf(const Geometry& geometry) {
  return {geometry.size[2], geometry.size[1], geometry.size[0]};
}

// Resamples one tensor dimension: output position t reads the source at continuous index
// `positions[t]` (already clamped to [0, n - 1]).
at::Tensor ResampleDim(const at::Tensor& voxels, int64_t dim, const std::vector<double>& positions,
                       Interpolation interpolation) {
  const int64_t n_in = voxels.size(dim);
  const auto n_out = static_cast<int64_t>(positions.size());
  std::vector<int64_t> lower(positions.size());
  if (interpolation == Interpolation::kNearest) {
    for (int64_t t = 0; t < n_out; ++t) {
      lower[t] = std::clamp<int64_t>(std::llround(positions[t]), 0, n_in - 1);
    }
    return voxels.index_select(dim, at::tensor(lower, at::kLong));
  }
  std::vector<int64_t> upper(positions.size());
  std::vector<float> weight(positions.size());
  for (int64_t t = 0; t < n_out; ++t) {
    const auto i0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(positions[t])), 0,
                                        std::max<int64_t>(n_in - 2, 0));
    lower[t] = i0;
    upper[t] = std::min(i0 + 1, n_in - 1);
    weight[t] = static_cast<float>(positions[t] - static_cast<double>(i0));
  }
  std::vector<int64_t> weight_shape(voxels.dim(), 1);
  weight_shape[dim] = n_out;
  at::Tensor w = at::tensor(weight, at::kFloat).view(weight_shape);
  at::Tensor a = voxels.index_select(dim, at::tensor(lower, at::kLong));
  at::Tensor b = voxels.index_select(dim, at::tensor(upper, at::kLong));
  return at::lerp(a, b, w);
}

// Linearly interpolated percentile (numpy's default) of `values`, which it reorders.
double Percentile(std::vector<float>& values, double percentile) {
  const double position = percentile / 100.0 * static_cast<double>(values.size() - 1);
  const auto below = static_cast<size_t>(std::floor(position));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(below),
                   values.end());
  const double low = values[below];
  const double fraction = position - static_cast<double>(below);
  if (fraction == 0.0 || below + 1 >= values.size()) return low;
  const double high =
      *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(below) + 1, values.end());
  return low + (high - low) * fraction;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Canonical orientation.

bool Reorientation::IsIdentity() const {
  return axis_from == std::array<int, 3>{0, 1, 2} &&
         flipped == std::array<bool, 3>{false, false, false};
}

absl::StatusOr<CanonicalVolume> ToCanonicalOrientation(const Volume& volume) {
  if (absl::Status status = ValidateGeometry(volume.geometry, "volume to reorient"); !status.ok()) {
    return status;
  }
  const Geometry& g = volume.geometry;
  const at::Tensor& v = volume.voxels;
  if (!v.defined() || v.dim() != 3 || v.sizes().vec() != ShapeOf(g)) {
    return absl::InvalidArgumentError(
        fmt::format("volume to reorient: voxel shape [{}] does not match the geometry's size "
                    "(i, j, k) = ({})",
                    v.defined() ? fmt::format("{}", fmt::join(v.sizes(), ", ")) : "undefined",
                    fmt::join(g.size, ", ")));
  }

  // Physical axis a gets the original index axis axis_from[a]: pick the assignment with the
  // largest summed |cosine|. Permutations are tried identity first, so ties keep the data as is.
  std::array<int, 3> perm{0, 1, 2};
  std::array<int, 3> best = perm;
  double best_score = -1.0;
  do {
    double score = 0.0;
    for (int a = 0; a < 3; ++a) score += std::abs(g.direction[a * 3 + perm[a]]);
    if (score > best_score + 1e-12) {
      best_score = score;
      best = perm;
    }
  } while (std::next_permutation(perm.begin(), perm.end()));

  Reorientation r;
  r.axis_from = best;
  r.original = g;
  Geometry out;
  std::array<double, 3> first_voxel{0, 0, 0};  // original index of the new voxel (0, 0, 0)
  for (int a = 0; a < 3; ++a) {
    const int c = best[a];
    r.flipped[a] = g.direction[a * 3 + c] < 0;
    out.size[a] = g.size[c];
    out.spacing[a] = g.spacing[c];
    double norm = 0.0;
    for (int row = 0; row < 3; ++row) {
      const double d = g.direction[row * 3 + c];
      out.direction[row * 3 + a] = r.flipped[a] ? -d : d;
      norm += d * d;
    }
    if (r.flipped[a]) first_voxel[c] = static_cast<double>(g.size[c] - 1);
    const double cosine = std::min(1.0, std::abs(g.direction[a * 3 + c]) / std::sqrt(norm));
    r.obliquity_degrees =
        std::max(r.obliquity_degrees, std::acos(cosine) * 180.0 / std::numbers::pi);
  }
  out.origin = IndexToPhysical(g, first_voxel);

  // Canonical tensor dim d holds canonical axis 2 - d, i.e. original axis best[2 - d].
  std::vector<int64_t> dims(3);
  std::vector<int64_t> flip_dims;
  for (int64_t d = 0; d < 3; ++d) {
    const int a = 2 - static_cast<int>(d);
    dims[d] = TensorDim(best[a]);
    if (r.flipped[a]) flip_dims.push_back(d);
  }
  at::Tensor voxels = v.permute(dims);
  if (!flip_dims.empty()) voxels = voxels.flip(flip_dims);
  return CanonicalVolume{Volume{voxels.contiguous(), out}, r};
}

absl::StatusOr<Volume> FromCanonicalOrientation(const Volume& canonical,
                                                const Reorientation& reorientation) {
  const Geometry& original = reorientation.original;
  std::array<int, 3> sorted = reorientation.axis_from;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != std::array<int, 3>{0, 1, 2}) {
    return absl::InvalidArgumentError(
        fmt::format("reorientation: axis_from [{}] is not a permutation of 0, 1, 2",
                    fmt::join(reorientation.axis_from, ", ")));
  }
  std::vector<int64_t> expected(3);
  std::vector<int64_t> flip_dims;
  std::vector<int64_t> dims(3);  // original tensor dim d <- canonical tensor dim dims[d]
  for (int a = 0; a < 3; ++a) {
    const int c = reorientation.axis_from[a];
    expected[TensorDim(a)] = original.size[c];
    if (reorientation.flipped[a]) flip_dims.push_back(TensorDim(a));
    dims[TensorDim(c)] = TensorDim(a);
  }
  const at::Tensor& v = canonical.voxels;
  if (!v.defined() || v.dim() != 3 || v.sizes().vec() != expected) {
    return absl::InvalidArgumentError(fmt::format(
        "volume to restore: voxel shape [{}] is not the canonical shape [{}] of the original grid",
        v.defined() ? fmt::format("{}", fmt::join(v.sizes(), ", ")) : "undefined",
        fmt::join(expected, ", ")));
  }
  at::Tensor voxels = flip_dims.empty() ? v : v.flip(flip_dims);
  return Volume{voxels.permute(dims).contiguous(), original};
}

// ---------------------------------------------------------------------------------------------
// Resampling.

Geometry GridWithSpacing(const Geometry& geometry, const std::array<double, 3>& spacing) {
  Geometry out = geometry;
  std::array<double, 3> first_voxel{0, 0, 0};  // source index of the new voxel (0, 0, 0)
  for (int c = 0; c < 3; ++c) {
    if (!(spacing[c] > 0)) continue;
    const double extent = static_cast<double>(geometry.size[c]) * geometry.spacing[c];
    out.size[c] = std::max<int64_t>(1, std::llround(extent / spacing[c]));
    out.spacing[c] = spacing[c];
    // Same centre: (n - 1) / 2 in the source is (n' - 1) / 2 in the new grid.
    first_voxel[c] = static_cast<double>(geometry.size[c] - 1) / 2.0 -
                     static_cast<double>(out.size[c] - 1) / 2.0 * spacing[c] / geometry.spacing[c];
  }
  out.origin = IndexToPhysical(geometry, first_voxel);
  return out;
}

absl::StatusOr<Volume> ResampleToGrid(const Volume& volume, const Geometry& target,
                                      const ResampleOptions& options) {
  if (absl::Status s = ValidateVolume(volume, "volume to resample"); !s.ok()) return s;
  if (absl::Status s = ValidateGeometry(target, "resampling target grid"); !s.ok()) return s;
  const Geometry& source = volume.geometry;
  for (int e = 0; e < 9; ++e) {
    if (std::abs(source.direction[e] - target.direction[e]) > 1e-6) {
      return absl::InvalidArgumentError(fmt::format(
          "resampling needs the same direction in source and target (reorient first): source "
          "[{}], target [{}]",
          fmt::join(source.direction, ", "), fmt::join(target.direction, ", ")));
    }
  }
  if (options.interpolation == Interpolation::kLinear && IsIntegral(volume.voxels.scalar_type())) {
    return absl::InvalidArgumentError(
        fmt::format("linear interpolation of a {} label volume would invent labels; use nearest",
                    DtypeName(volume.voxels.scalar_type())));
  }

  // With a shared direction, target voxel t along axis c sits at source index
  // start[c] + t * target.spacing[c] / source.spacing[c] along that axis only.
  const std::array<double, 3> start = PhysicalToIndex(source, target.origin);
  at::Tensor voxels = volume.voxels;
  std::array<at::Tensor, 3> inside;  // per axis: which output positions lie within the source
  bool all_inside = true;
  for (int c = 0; c < 3; ++c) {
    const int64_t n_in = source.size[c];
    const int64_t n_out = target.size[c];
    const double step = target.spacing[c] / source.spacing[c];
    std::vector<double> positions(n_out);
    std::vector<uint8_t> in(n_out);
    bool identity = n_out == n_in;
    for (int64_t t = 0; t < n_out; ++t) {
      double x = start[c] + static_cast<double>(t) * step;
      // Snap rounding noise so that an unchanged axis is copied, not interpolated.
      if (std::abs(x - std::round(x)) < 1e-6) x = std::round(x);
      in[t] = x >= -0.5 - 1e-6 && x <= static_cast<double>(n_in) - 0.5 + 1e-6;
      all_inside = all_inside && in[t];
      identity = identity && x == static_cast<double>(t);
      positions[t] = std::clamp(x, 0.0, static_cast<double>(n_in - 1));
    }
    std::vector<int64_t> mask_shape{1, 1, 1};
    mask_shape[TensorDim(c)] = n_out;
    inside[c] = at::tensor(at::ArrayRef<uint8_t>(in), at::kByte).to(at::kBool).view(mask_shape);
    if (!identity) voxels = ResampleDim(voxels, TensorDim(c), positions, options.interpolation);
  }
  if (!all_inside) {
    at::Tensor mask = inside[0].logical_and(inside[1]).logical_and(inside[2]);
    voxels = at::where(mask, voxels, at::scalar_tensor(options.outside_value, voxels.options()));
  }
  return Volume{voxels.contiguous(), target};
}

absl::StatusOr<Volume> ResampleToSpacing(const Volume& volume, const std::array<double, 3>& spacing,
                                         const ResampleOptions& options) {
  for (double s : spacing) {
    if (!std::isfinite(s)) {
      return absl::InvalidArgumentError(
          fmt::format("target spacing [{}] is not finite", fmt::join(spacing, ", ")));
    }
  }
  return ResampleToGrid(volume, GridWithSpacing(volume.geometry, spacing), options);
}

absl::StatusOr<Volume> ResampleInPlane(const Volume& volume, int slice_axis, double spacing,
                                       const ResampleOptions& options) {
  if (absl::Status s = CheckAxis(slice_axis, "in-plane resampling"); !s.ok()) return s;
  if (!std::isfinite(spacing) || spacing <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("in-plane resampling: spacing {} mm must be positive", spacing));
  }
  std::array<double, 3> target{spacing, spacing, spacing};
  target[slice_axis] = 0.0;  // keep
  return ResampleToSpacing(volume, target, options);
}

// ---------------------------------------------------------------------------------------------
// Intensity normalization.

absl::StatusOr<IntensityStats> ComputeIntensityStats(const at::Tensor& image,
                                                     const NormalizeOptions& options) {
  if (!(options.lower_percentile >= 0 && options.lower_percentile <= options.upper_percentile &&
        options.upper_percentile <= 100)) {
    return absl::InvalidArgumentError(
        fmt::format("normalization: percentiles [{}, {}] must satisfy 0 <= lower <= upper <= 100",
                    options.lower_percentile, options.upper_percentile));
  }
  if (!image.defined() || image.numel() == 0) {
    return absl::InvalidArgumentError("normalization: the image is empty");
  }
  if (image.scalar_type() != at::kFloat) {
    return absl::InvalidArgumentError(fmt::format("normalization: image is {}, expected float32",
                                                  DtypeName(image.scalar_type())));
  }
  at::Tensor flat = image.contiguous().view(-1);
  if (!at::isfinite(flat).all().item<bool>()) {
    return absl::InvalidArgumentError("normalization: the image has NaN or infinite values");
  }
  const float* data = flat.data_ptr<float>();
  const auto n = static_cast<size_t>(flat.numel());
  std::vector<float> values(data, data + n);
  IntensityStats stats;
  stats.lower = Percentile(values, options.lower_percentile);
  stats.upper = Percentile(values, options.upper_percentile);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += std::clamp<double>(data[i], stats.lower, stats.upper);
  stats.mean = sum / static_cast<double>(n);
  double squares = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::clamp<double>(data[i], stats.lower, stats.upper) - stats.mean;
    squares += d * d;
  }
  stats.std = std::sqrt(squares / static_cast<double>(n));
  return stats;
}

at::Tensor ApplyIntensityNormalization(const at::Tensor& image, const IntensityStats& stats,
                                       const NormalizeOptions& options) {
  if (stats.std < options.min_std) return at::zeros_like(image);
  return image.clamp(stats.lower, stats.upper).sub(stats.mean).div(stats.std);
}

absl::StatusOr<at::Tensor> NormalizeIntensity(const at::Tensor& image,
                                              const NormalizeOptions& options) {
  absl::StatusOr<IntensityStats> stats = ComputeIntensityStats(image, options);
  if (!stats.ok()) return stats.status();
  return ApplyIntensityNormalization(image, *stats, options);
}

// ---------------------------------------------------------------------------------------------
// Slicing and crop/pad.

absl::StatusOr<at::Tensor> ToSlices(const at::Tensor& voxels, int axis) {
  if (absl::Status s = CheckAxis(axis, "slicing"); !s.ok()) return s;
  if (!voxels.defined() || voxels.dim() != 3) {
    return absl::InvalidArgumentError("slicing: voxels must be a 3D tensor [k, j, i]");
  }
  switch (axis) {
    case 0:
      return voxels.permute({2, 0, 1}).contiguous();  // [i, k, j]
    case 1:
      return voxels.permute({1, 0, 2}).contiguous();  // [j, k, i]
    default:
      return voxels.contiguous();  // [k, j, i]
  }
}

absl::StatusOr<at::Tensor> FromSlices(const at::Tensor& slices, int axis) {
  if (absl::Status s = CheckAxis(axis, "unslicing"); !s.ok()) return s;
  if (!slices.defined() || slices.dim() != 3) {
    return absl::InvalidArgumentError("unslicing: slices must be a 3D tensor [N, H, W]");
  }
  switch (axis) {
    case 0:
      return slices.permute({1, 2, 0}).contiguous();
    case 1:
      return slices.permute({1, 0, 2}).contiguous();
    default:
      return slices.contiguous();
  }
}

absl::StatusOr<at::Tensor> CenterCropOrPad(const at::Tensor& image, int64_t height, int64_t width,
                                           double pad_value) {
  if (!image.defined() || image.dim() < 2) {
    return absl::InvalidArgumentError(
        "crop/pad: the image needs at least 2 dimensions [..., H, W]");
  }
  if (height <= 0 || width <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("crop/pad: target size {}x{} must be positive", height, width));
  }
  std::vector<int64_t> shape = image.sizes().vec();
  const int64_t h_dim = image.dim() - 2;
  const std::array<int64_t, 2> dims{h_dim, h_dim + 1};
  const std::array<int64_t, 2> target{height, width};
  if (shape[h_dim] == height && shape[h_dim + 1] == width) return image.contiguous();
  shape[h_dim] = height;
  shape[h_dim + 1] = width;
  at::Tensor out = at::full(shape, pad_value, image.options());
  at::Tensor src = image;
  at::Tensor dst = out;
  for (int e = 0; e < 2; ++e) {
    const int64_t n_in = image.size(dims[e]);
    const int64_t diff = target[e] - n_in;  // > 0: pad; < 0: crop; the odd voxel goes after
    if (diff >= 0) {
      dst = dst.narrow(dims[e], diff / 2, n_in);
    } else {
      src = src.narrow(dims[e], (-diff) / 2, target[e]);
    }
  }
  dst.copy_(src);
  return out;
}

absl::StatusOr<at::Tensor> UndoCenterCropOrPad(const at::Tensor& image, int64_t original_height,
                                               int64_t original_width, double fill_value) {
  // Centre crop and centre pad put the odd voxel on the same side, so each undoes the other.
  return CenterCropOrPad(image, original_height, original_width, fill_value);
}

// ---------------------------------------------------------------------------------------------
// Label remapping.

absl::StatusOr<at::Tensor> RemapLabels(const at::Tensor& labels, const LabelMapping& mapping) {
  if (!labels.defined()) return absl::InvalidArgumentError("label remapping: labels are missing");
  const at::ScalarType dtype = labels.scalar_type();
  if (dtype != at::kByte && dtype != at::kShort && dtype != at::kInt && dtype != at::kLong) {
    return absl::InvalidArgumentError(fmt::format(
        "label remapping: labels are {}, expected uint8, int16, int32 or int64", DtypeName(dtype)));
  }
  for (const auto& [value, index] : mapping.value_to_index) {
    if (index < 0 || index > 255) {
      return absl::InvalidArgumentError(fmt::format(
          "label remapping: label value {} maps to structure index {}, outside [0, 255]", value,
          index));
    }
  }
  at::Tensor present = std::get<0>(at::_unique(labels.reshape(-1), /*sorted=*/true)).to(at::kLong);
  const int64_t* present_data = present.data_ptr<int64_t>();
  std::vector<int64_t> unlisted;
  for (int64_t e = 0; e < present.numel(); ++e) {
    const int64_t value = present_data[e];
    if (value != 0 && !mapping.value_to_index.contains(value)) unlisted.push_back(value);
  }
  if (!unlisted.empty() && !mapping.unlisted_to_background) {
    std::vector<int64_t> listed;
    for (const auto& entry : mapping.value_to_index) listed.push_back(entry.first);
    return absl::InvalidArgumentError(fmt::format(
        "label remapping: label values [{}] are present but not in the mapping (mapped values: "
        "[{}]); map them or map unlisted values to background",
        fmt::join(unlisted, ", "), fmt::join(listed, ", ")));
  }
  at::Tensor out = at::zeros(labels.sizes(), labels.options().dtype(at::kByte));
  for (int64_t e = 0; e < present.numel(); ++e) {
    auto it = mapping.value_to_index.find(present_data[e]);
    if (it == mapping.value_to_index.end() || it->second == 0) continue;
    out.masked_fill_(labels.eq(present_data[e]), it->second);
  }
  return out;
}

}  // namespace fedjoint::common::data
