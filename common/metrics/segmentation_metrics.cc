#include "common/metrics/segmentation_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <torch/torch.h>

#include "common/metrics/surface_distance.h"

namespace fedjoint::common::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string FormatTriple(const std::array<double, 3>& v) {
  return fmt::format("({}, {}, {})", v[0], v[1], v[2]);
}

absl::Status CheckLabelTensor(const at::Tensor& t, const char* what) {
  if (!t.defined()) return absl::InvalidArgumentError(fmt::format("{} volume is empty", what));
  if (t.dim() != 3) {
    return absl::InvalidArgumentError(
        fmt::format("{} volume must be 3-D [k, j, i], got {} dimensions", what, t.dim()));
  }
  if (at::isFloatingType(t.scalar_type()) || t.scalar_type() == at::kBool || t.is_complex()) {
    return absl::InvalidArgumentError(fmt::format("{} volume must hold integer labels, got {}",
                                                  what,
                                                  std::string(c10::toString(t.scalar_type()))));
  }
  return absl::OkStatus();
}

std::vector<uint8_t> MaskOf(const at::Tensor& labels, int64_t label) {
  const at::Tensor mask = labels.eq(label).to(at::kByte).contiguous().cpu();
  const uint8_t* data = mask.data_ptr<uint8_t>();
  return std::vector<uint8_t>(data, data + mask.numel());
}

bool Close(double a, double b, double tolerance) { return std::abs(a - b) <= tolerance; }

}  // namespace

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return kNaN;
  const double rank = q / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lower = static_cast<size_t>(std::floor(rank));
  const size_t upper = std::min(lower + 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + lower, values.end());
  const double low_value = values[lower];
  if (upper == lower) return low_value;
  const double high_value = *std::min_element(values.begin() + lower + 1, values.end());
  const double fraction = rank - static_cast<double>(lower);
  return fraction == 0 ? low_value : low_value + fraction * (high_value - low_value);
}

StructureMetrics ComputeMaskMetrics(std::span<const uint8_t> prediction,
                                    std::span<const uint8_t> truth,
                                    const std::array<int64_t, 3>& size,
                                    const std::array<double, 3>& spacing) {
  StructureMetrics m;
  for (size_t n = 0; n < prediction.size(); ++n) {
    const bool p = prediction[n] != 0;
    const bool t = truth[n] != 0;
    m.prediction_voxels += p;
    m.truth_voxels += t;
    m.overlap_voxels += p && t;
  }
  const int64_t total = m.prediction_voxels + m.truth_voxels;
  m.dice =
      total == 0 ? 1.0 : 2.0 * static_cast<double>(m.overlap_voxels) / static_cast<double>(total);
  if (total == 0) {
    m.hd = m.hd95 = m.assd = kNaN;
    return m;
  }
  if (m.prediction_voxels == 0 || m.truth_voxels == 0) {
    m.hd = m.hd95 = m.assd = kInf;
    return m;
  }
  SurfaceDistances distances = ComputeSurfaceDistances(prediction, truth, size, spacing);
  std::vector<double> all = std::move(distances.a_to_b);
  all.insert(all.end(), distances.b_to_a.begin(), distances.b_to_a.end());
  m.hd = *std::max_element(all.begin(), all.end());
  m.assd = std::accumulate(all.begin(), all.end(), 0.0) / static_cast<double>(all.size());
  m.hd95 = Percentile(std::move(all), 95.0);
  return m;
}

absl::StatusOr<StructureMetrics> ComputeLabelMetrics(const at::Tensor& prediction,
                                                     const at::Tensor& truth, int64_t label,
                                                     const std::array<double, 3>& spacing) {
  if (absl::Status s = CheckLabelTensor(prediction, "prediction"); !s.ok()) return s;
  if (absl::Status s = CheckLabelTensor(truth, "truth"); !s.ok()) return s;
  if (prediction.sizes() != truth.sizes()) {
    return absl::InvalidArgumentError(
        fmt::format("prediction shape [{}] differs from truth shape [{}]",
                    fmt::join(prediction.sizes(), ", "), fmt::join(truth.sizes(), ", ")));
  }
  for (double s : spacing) {
    if (!std::isfinite(s) || s <= 0) {
      return absl::InvalidArgumentError(
          fmt::format("voxel spacing must be finite and > 0, got {}", FormatTriple(spacing)));
    }
  }
  const std::array<int64_t, 3> size = {prediction.size(2), prediction.size(1), prediction.size(0)};
  const std::vector<uint8_t> p = MaskOf(prediction, label);
  const std::vector<uint8_t> t = MaskOf(truth, label);
  StructureMetrics m = ComputeMaskMetrics(p, t, size, spacing);
  m.label = label;
  return m;
}

absl::StatusOr<std::vector<StructureMetrics>> ComputeSegmentationMetrics(
    const data::Volume& prediction, const data::Volume& truth,
    std::span<const Structure> structures) {
  const data::Geometry& gp = prediction.geometry;
  const data::Geometry& gt = truth.geometry;
  if (gp.size != gt.size) {
    return absl::InvalidArgumentError(
        fmt::format("prediction size ({}) differs from truth size ({})", fmt::join(gp.size, ", "),
                    fmt::join(gt.size, ", ")));
  }
  for (int a = 0; a < 3; ++a) {
    if (!Close(gp.spacing[a], gt.spacing[a], 1e-6 * std::max(1.0, std::abs(gt.spacing[a])))) {
      return absl::InvalidArgumentError(
          fmt::format("prediction spacing {} differs from truth spacing {}",
                      FormatTriple(gp.spacing), FormatTriple(gt.spacing)));
    }
    // Origins within a thousandth of a voxel.
    if (!Close(gp.origin[a], gt.origin[a], 1e-3 * gt.spacing[a])) {
      return absl::InvalidArgumentError(fmt::format(
          "prediction origin {} differs from truth origin {}: the volumes do not overlay",
          FormatTriple(gp.origin), FormatTriple(gt.origin)));
    }
  }
  for (int c = 0; c < 9; ++c) {
    if (!Close(gp.direction[c], gt.direction[c], 1e-6)) {
      return absl::InvalidArgumentError(
          fmt::format("prediction direction ({}) differs from truth direction ({})",
                      fmt::join(gp.direction, ", "), fmt::join(gt.direction, ", ")));
    }
  }
  for (const auto* v : {&prediction, &truth}) {
    const char* what = v == &prediction ? "prediction" : "truth";
    if (absl::Status s = CheckLabelTensor(v->voxels, what); !s.ok()) return s;
    const std::array<int64_t, 3>& size = v->geometry.size;
    if (v->voxels.size(0) != size[2] || v->voxels.size(1) != size[1] ||
        v->voxels.size(2) != size[0]) {
      return absl::InvalidArgumentError(
          fmt::format("{} voxels have shape [{}] but the geometry size (i, j, k) is ({})", what,
                      fmt::join(v->voxels.sizes(), ", "), fmt::join(size, ", ")));
    }
  }
  std::vector<StructureMetrics> result;
  result.reserve(structures.size());
  for (const Structure& structure : structures) {
    absl::StatusOr<StructureMetrics> m =
        ComputeLabelMetrics(prediction.voxels, truth.voxels, structure.label, gt.spacing);
    if (!m.ok()) return m.status();
    m->structure = structure.name;
    result.push_back(std::move(*m));
  }
  return result;
}

}  // namespace fedjoint::common::metrics
