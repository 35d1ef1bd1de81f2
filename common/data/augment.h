// Random augmentation of training slices: geometric transforms applied identically to image and
// label (bilinear for the image, nearest for the label, so no label value is invented), then
// intensity transforms of the image only.
//
// Reproducible: every random number comes from Rng (rng.h) seeded per sample, and each transform
// draws from its own stream derived from that seed, so a sample's augmentation depends only on its
// seed and on the options of that transform (turning noise on does not change the rotation angle).
#pragma once

#include <cstdint>
#include <span>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedjoint::common::data {

struct AugmentOptions {
  // --- Geometric (image and label together). Out-of-slice samples repeat the border.
  double rotation_probability = 0.5;
  double max_rotation_degrees = 15.0;  // angle uniform in [-max, max]
  double scale_probability = 0.5;
  double min_scale = 0.85;  // zoom factor uniform in [min, max]; > 1 enlarges the anatomy
  double max_scale = 1.15;
  // Mirroring is opt-in per axis. Off by default because a mirrored slice shows the other side's
  // anatomy: in canonical LPS slices the width axis is the patient's left/right for axial and
  // coronal slices, and a flipped right knee looks like a left one; that is harmless only when the
  // structures are not lateralized and both sides occur. Flipping along height (anterior/posterior
  // or superior/inferior) produces anatomy that never occurs and is rarely useful.
  bool flip_width = false;
  bool flip_height = false;
  double flip_probability = 0.5;  // per enabled axis
  // Smooth random displacement: control-point offsets ~ N(0, magnitude^2) pixels on a
  // grid x grid lattice, upsampled bicubically. Off by default (slow to pay off on small data and
  // can break thin cortical bone).
  double elastic_probability = 0.0;
  double elastic_magnitude = 3.0;  // pixels (standard deviation of the control-point offsets)
  int elastic_grid = 5;

  // --- Intensity (image only), in this order: bias field, gamma, contrast/brightness, noise.
  // Smooth multiplicative bias field about the slice minimum: exp(p(x, y)) with p a random
  // polynomial of the given order whose largest |value| is uniform in [0, magnitude].
  double bias_field_probability = 0.3;
  double bias_field_magnitude = 0.3;
  int bias_field_order = 3;
  // Gamma on the slice rescaled to [0, 1] (and back), gamma uniform in [min, max].
  double gamma_probability = 0.3;
  double min_gamma = 0.7;
  double max_gamma = 1.5;
  // Contrast factor about the slice mean, uniform in [min, max], plus a brightness shift uniform
  // in [-max_brightness, max_brightness] (normalized intensity units).
  double contrast_probability = 0.3;
  double min_contrast = 0.75;
  double max_contrast = 1.25;
  double max_brightness = 0.1;
  // Additive Gaussian noise with standard deviation uniform in [0, max_noise_std].
  double noise_probability = 0.15;
  double max_noise_std = 0.1;

  // Every probability 0: Augment returns its inputs unchanged.
  static AugmentOptions None();
};

// Probabilities in [0, 1], ranges ordered and finite, positive scales/gammas, grid >= 2,
// order in [1, 6]. The message names the field.
absl::Status ValidateAugmentOptions(const AugmentOptions& options);

struct AugmentedSlices {
  at::Tensor images;  // as the input images
  at::Tensor labels;  // as the input labels (undefined if they were)
};

// Augments sample b of `images` (float32 [B, C, H, W]) and `labels` (integer [B, H, W], any
// integer dtype, or undefined) with seed seeds[b]. Inputs are not modified; outputs are new
// contiguous tensors of the same shapes and dtypes. Sample b's result depends only on its inputs,
// its seed and the options (not on B or the other samples). InvalidArgument for bad shapes or
// options.
absl::StatusOr<AugmentedSlices> Augment(const at::Tensor& images, const at::Tensor& labels,
                                        const AugmentOptions& options,
                                        std::span<const uint64_t> seeds);

}  // namespace fedjoint::common::data
