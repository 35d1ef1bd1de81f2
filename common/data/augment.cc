#include "common/data/augment.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common/data/rng.h"

namespace fedjoint::common::data {
namespace {

// One random stream per transform (see the header).
enum Stream : uint64_t {
  kRotation = 1,
  kScale,
  kFlip,
  kElastic,
  kBiasField,
  kGamma,
  kContrast,
  kNoise,
};

// grid_sampler's integer modes.
constexpr int64_t kBilinear = 0;
constexpr int64_t kNearest = 1;
constexpr int64_t kBorder = 1;

// The geometric transform of one sample: output pixel offset (from the slice centre) o maps to
// input offset a * o (pixels), plus an optional smooth displacement.
struct Geometric {
  std::array<double, 4> a{1, 0, 0, 1};  // row-major 2x2, rows (x, y)
  bool elastic = false;
  bool active = false;
};

Geometric DrawGeometric(const AugmentOptions& o, uint64_t seed) {
  Geometric g;
  double angle = 0.0;
  double scale = 1.0;
  double flip_x = 1.0;
  double flip_y = 1.0;
  if (o.rotation_probability > 0) {
    Rng rng(DeriveSeed({seed, kRotation}));
    if (rng.Bernoulli(o.rotation_probability)) {
      angle =
          rng.Uniform(-o.max_rotation_degrees, o.max_rotation_degrees) * std::numbers::pi / 180.0;
    }
  }
  if (o.scale_probability > 0) {
    Rng rng(DeriveSeed({seed, kScale}));
    if (rng.Bernoulli(o.scale_probability)) scale = rng.Uniform(o.min_scale, o.max_scale);
  }
  if (o.flip_probability > 0 && (o.flip_width || o.flip_height)) {
    Rng rng(DeriveSeed({seed, kFlip}));
    // Both draws always happen, so enabling one axis does not change the other's decision.
    const bool fx = rng.Bernoulli(o.flip_probability);
    const bool fy = rng.Bernoulli(o.flip_probability);
    if (o.flip_width && fx) flip_x = -1.0;
    if (o.flip_height && fy) flip_y = -1.0;
  }
  if (o.elastic_probability > 0) {
    Rng rng(DeriveSeed({seed, kElastic}));
    g.elastic = rng.Bernoulli(o.elastic_probability) && o.elastic_magnitude > 0;
  }
  // Sampling the input at R(angle) * o / scale shows the anatomy rotated by -angle and zoomed by
  // `scale`; the sign does not matter since the angle is symmetric.
  const double c = std::cos(angle) / scale;
  const double s = std::sin(angle) / scale;
  g.a = {c * flip_x, -s * flip_y, s * flip_x, c * flip_y};
  g.active = angle != 0.0 || scale != 1.0 || flip_x < 0 || flip_y < 0 || g.elastic;
  return g;
}

// Displacement field [2, H, W] in grid_sampler's normalized units (x then y).
at::Tensor ElasticDisplacement(const AugmentOptions& o, uint64_t seed, int64_t height,
                               int64_t width) {
  Rng rng(DeriveSeed({seed, kElastic}));
  rng.Bernoulli(o.elastic_probability);  // the draw that decided to deform
  const int64_t g = o.elastic_grid;
  std::vector<float> control(static_cast<size_t>(2 * g * g));
  for (float& v : control) v = static_cast<float>(rng.Normal() * o.elastic_magnitude);
  at::Tensor field = at::tensor(control, at::kFloat).view({1, 2, g, g});
  field = at::upsample_bicubic2d(field, {height, width}, /*align_corners=*/true)[0];
  // Pixels to normalized coordinates (align_corners = false: 2 / size per pixel).
  at::Tensor scale =
      at::tensor({2.0f / static_cast<float>(width), 2.0f / static_cast<float>(height)}, at::kFloat)
          .view({2, 1, 1});
  return field.mul_(scale);
}

// Intensity transforms of one sample (C channels of height x width, contiguous), in place.
// Plain loops with double accumulators: the result is the same whatever the thread count, and
// needs no ATen dispatch per tiny op.
void AugmentIntensity(float* data, int64_t channels, int64_t height, int64_t width,
                      const AugmentOptions& o, uint64_t seed) {
  const int64_t plane = height * width;
  const int64_t count = channels * plane;
  auto min_max = [&] {
    float lo = data[0];
    float hi = data[0];
    for (int64_t e = 1; e < count; ++e) {
      lo = std::min(lo, data[e]);
      hi = std::max(hi, data[e]);
    }
    return std::pair<double, double>(lo, hi);
  };

  if (o.bias_field_probability > 0) {
    Rng rng(DeriveSeed({seed, kBiasField}));
    if (rng.Bernoulli(o.bias_field_probability)) {
      const int order = o.bias_field_order;
      std::vector<double> coefficients;  // (i, j) with 1 <= i + j <= order, i-major
      for (int i = 0; i <= order; ++i) {
        for (int j = 0; i + j <= order; ++j) {
          if (i + j > 0) coefficients.push_back(rng.Uniform(-1.0, 1.0));
        }
      }
      const double strength = rng.Uniform(0.0, o.bias_field_magnitude);
      // Powers of the normalized coordinates in [-1, 1].
      std::vector<double> px((order + 1) * width);
      std::vector<double> py((order + 1) * height);
      for (int64_t w = 0; w < width; ++w) {
        const double x = (2.0 * static_cast<double>(w) + 1.0) / static_cast<double>(width) - 1.0;
        for (int i = 0; i <= order; ++i) px[i * width + w] = std::pow(x, i);
      }
      for (int64_t h = 0; h < height; ++h) {
        const double y = (2.0 * static_cast<double>(h) + 1.0) / static_cast<double>(height) - 1.0;
        for (int j = 0; j <= order; ++j) py[j * height + h] = std::pow(y, j);
      }
      std::vector<double> log_field(plane, 0.0);
      double largest = 0.0;
      for (int64_t h = 0; h < height; ++h) {
        for (int64_t w = 0; w < width; ++w) {
          double v = 0.0;
          size_t k = 0;
          for (int i = 0; i <= order; ++i) {
            for (int j = 0; i + j <= order; ++j) {
              if (i + j > 0) v += coefficients[k++] * px[i * width + w] * py[j * height + h];
            }
          }
          log_field[h * width + w] = v;
          largest = std::max(largest, std::abs(v));
        }
      }
      if (largest > 0) {
        const double factor = strength / largest;
        const double lo = min_max().first;
        for (int64_t c = 0; c < channels; ++c) {
          float* p = data + c * plane;
          for (int64_t e = 0; e < plane; ++e) {
            p[e] = static_cast<float>(lo + (p[e] - lo) * std::exp(factor * log_field[e]));
          }
        }
      }
    }
  }

  if (o.gamma_probability > 0) {
    Rng rng(DeriveSeed({seed, kGamma}));
    if (rng.Bernoulli(o.gamma_probability)) {
      const double gamma = rng.Uniform(o.min_gamma, o.max_gamma);
      const auto [lo, hi] = min_max();
      if (hi > lo) {
        const double range = hi - lo;
        for (int64_t e = 0; e < count; ++e) {
          const double t = std::clamp((data[e] - lo) / range, 0.0, 1.0);
          data[e] = static_cast<float>(lo + range * std::pow(t, gamma));
        }
      }
    }
  }

  if (o.contrast_probability > 0) {
    Rng rng(DeriveSeed({seed, kContrast}));
    if (rng.Bernoulli(o.contrast_probability)) {
      const double contrast = rng.Uniform(o.min_contrast, o.max_contrast);
      const double brightness = rng.Uniform(-o.max_brightness, o.max_brightness);
      double sum = 0.0;
      for (int64_t e = 0; e < count; ++e) sum += data[e];
      const double mean = sum / static_cast<double>(count);
      for (int64_t e = 0; e < count; ++e) {
        data[e] = static_cast<float>((data[e] - mean) * contrast + mean + brightness);
      }
    }
  }

  if (o.noise_probability > 0) {
    Rng rng(DeriveSeed({seed, kNoise}));
    if (rng.Bernoulli(o.noise_probability)) {
      const double sigma = rng.Uniform(0.0, o.max_noise_std);
      for (int64_t e = 0; e < count; ++e) {
        data[e] = static_cast<float>(data[e] + sigma * rng.Normal());
      }
    }
  }
}

absl::Status CheckProbability(double p, const char* field) {
  if (!(p >= 0.0 && p <= 1.0)) {
    return absl::InvalidArgumentError(
        fmt::format("augmentation: {} = {} is not a probability in [0, 1]", field, p));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(double low, double high, const char* low_field, const char* high_field,
                        double minimum) {
  if (!(std::isfinite(low) && std::isfinite(high) && low >= minimum && low <= high)) {
    return absl::InvalidArgumentError(
        fmt::format("augmentation: [{}, {}] = [{}, {}] must be finite, ordered and above {}",
                    low_field, high_field, low, high, minimum));
  }
  return absl::OkStatus();
}

}  // namespace

AugmentOptions AugmentOptions::None() {
  AugmentOptions o;
  o.rotation_probability = 0;
  o.scale_probability = 0;
  o.flip_probability = 0;
  o.elastic_probability = 0;
  o.bias_field_probability = 0;
  o.gamma_probability = 0;
  o.contrast_probability = 0;
  o.noise_probability = 0;
  return o;
}

absl::Status ValidateAugmentOptions(const AugmentOptions& o) {
  const std::pair<double, const char*> probabilities[] = {
      {o.rotation_probability, "rotation_probability"},
      {o.scale_probability, "scale_probability"},
      {o.flip_probability, "flip_probability"},
      {o.elastic_probability, "elastic_probability"},
      {o.bias_field_probability, "bias_field_probability"},
      {o.gamma_probability, "gamma_probability"},
      {o.contrast_probability, "contrast_probability"},
      {o.noise_probability, "noise_probability"},
  };
  for (const auto& [p, field] : probabilities) {
    if (absl::Status s = CheckProbability(p, field); !s.ok()) return s;
  }
  const std::pair<double, const char*> amounts[] = {
      {o.max_rotation_degrees, "max_rotation_degrees"},
      {o.elastic_magnitude, "elastic_magnitude"},
      {o.bias_field_magnitude, "bias_field_magnitude"},
      {o.max_brightness, "max_brightness"},
      {o.max_noise_std, "max_noise_std"},
  };
  for (const auto& [v, field] : amounts) {
    if (!(std::isfinite(v) && v >= 0)) {
      return absl::InvalidArgumentError(
          fmt::format("augmentation: {} = {} must be finite and >= 0", field, v));
    }
  }
  if (absl::Status s = CheckRange(o.min_scale, o.max_scale, "min_scale", "max_scale", 1e-3);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange(o.min_gamma, o.max_gamma, "min_gamma", "max_gamma", 1e-3);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckRange(o.min_contrast, o.max_contrast, "min_contrast", "max_contrast", 0.0);
      !s.ok()) {
    return s;
  }
  if (o.elastic_grid < 2 || o.elastic_grid > 64) {
    return absl::InvalidArgumentError(
        fmt::format("augmentation: elastic_grid = {} must be in [2, 64]", o.elastic_grid));
  }
  if (o.bias_field_order < 1 || o.bias_field_order > 6) {
    return absl::InvalidArgumentError(
        fmt::format("augmentation: bias_field_order = {} must be in [1, 6]", o.bias_field_order));
  }
  return absl::OkStatus();
}

absl::StatusOr<AugmentedSlices> Augment(const at::Tensor& images, const at::Tensor& labels,
                                        const AugmentOptions& options,
                                        std::span<const uint64_t> seeds) {
  if (absl::Status s = ValidateAugmentOptions(options); !s.ok()) return s;
  if (!images.defined() || images.dim() != 4 || images.scalar_type() != at::kFloat ||
      !images.device().is_cpu()) {
    return absl::InvalidArgumentError(
        "augmentation: images must be a float32 CPU tensor [B, C, H, W]");
  }
  const int64_t batch = images.size(0);
  const int64_t channels = images.size(1);
  const int64_t height = images.size(2);
  const int64_t width = images.size(3);
  if (labels.defined() &&
      (labels.dim() != 3 || labels.size(0) != batch || labels.size(1) != height ||
       labels.size(2) != width || !at::isIntegralType(labels.scalar_type(), false) ||
       !labels.device().is_cpu())) {
    return absl::InvalidArgumentError(fmt::format(
        "augmentation: labels must be an integer CPU tensor [{}, {}, {}] matching the images",
        batch, height, width));
  }
  if (static_cast<int64_t>(seeds.size()) != batch) {
    return absl::InvalidArgumentError(
        fmt::format("augmentation: {} seeds for a batch of {} samples", seeds.size(), batch));
  }

  AugmentedSlices out;
  out.images = images.contiguous().clone();
  out.labels = labels.defined() ? labels.contiguous().clone() : at::Tensor();
  if (batch == 0 || height == 0 || width == 0) return out;

  // Geometric transforms: one grid_sampler call over the samples that move.
  std::vector<Geometric> geometric(batch);
  std::vector<int64_t> moving;
  for (int64_t b = 0; b < batch; ++b) {
    geometric[b] = DrawGeometric(options, seeds[b]);
    if (geometric[b].active) moving.push_back(b);
  }
  if (!moving.empty()) {
    const auto m = static_cast<int64_t>(moving.size());
    std::vector<float> theta;
    theta.reserve(m * 6);
    // In normalized coordinates (x scaled by 2 / W, y by 2 / H), the off-diagonal terms pick up
    // the aspect ratio, so a rotation stays a rotation on non-square slices.
    const double aspect = static_cast<double>(height) / static_cast<double>(width);
    for (int64_t b : moving) {
      const auto& a = geometric[b].a;
      for (double v : {a[0], a[1] * aspect, 0.0, a[2] / aspect, a[3], 0.0}) {
        theta.push_back(static_cast<float>(v));
      }
    }
    at::Tensor theta_tensor = at::tensor(theta, at::kFloat).view({m, 2, 3});
    at::Tensor grid = at::affine_grid_generator(theta_tensor, {m, channels, height, width},
                                                /*align_corners=*/false);
    for (int64_t s = 0; s < m; ++s) {
      const int64_t b = moving[s];
      if (!geometric[b].elastic) continue;
      grid[s].add_(ElasticDisplacement(options, seeds[b], height, width).permute({1, 2, 0}));
    }
    at::Tensor index = at::tensor(moving, at::kLong);
    at::Tensor warped = at::grid_sampler_2d(out.images.index_select(0, index), grid, kBilinear,
                                            kBorder, /*align_corners=*/false);
    out.images.index_copy_(0, index, warped);
    if (out.labels.defined()) {
      at::Tensor selected = out.labels.index_select(0, index).to(at::kFloat).unsqueeze(1);
      at::Tensor moved =
          at::grid_sampler_2d(selected, grid, kNearest, kBorder, /*align_corners=*/false);
      out.labels.index_copy_(0, index, moved.squeeze(1).round().to(out.labels.scalar_type()));
    }
  }

  float* data = out.images.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {
    AugmentIntensity(data + b * channels * height * width, channels, height, width, options,
                     seeds[b]);
  }
  return out;
}

}  // namespace fedjoint::common::data
