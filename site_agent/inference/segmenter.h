// The inference core of `evaluate` and `segment`: a scan in, a label volume out, on exactly the
// scan's voxel grid (size, spacing, origin, direction), so the prediction overlays the scan.
//
//   scan -> canonical orientation -> in-plane resampling -> intensity normalization -> slices
//   -> pad to a multiple of 32 (never crop) -> batched forward (eval-mode BatchNorm folded into
//   the convolutions, channels-last, c10::InferenceMode, freed tensor memory reused between
//   batches: common/model/cpu_tensor_cache.h) -> softmax of the joint's head -> remove padding
//   -> probabilities back onto the canonical grid (linear) -> argmax -> original orientation.
//
// The probabilities (not the labels) are resampled back, so boundaries are as smooth as the
// network's output rather than blocky at the training pixel size. The normalization and resampling
// are those of training (common/data/slice_options.h), so a model sees the same kind of
// slices it learned from. Padding instead of cropping means nothing outside the training field of
// view is lost: the network is fully convolutional.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/data/volume.h"
#include "common/model/unet.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent::inference {

struct SegmenterOptions {
  int64_t batch_size = 16;  // slices per forward pass
  // Intra-op threads for inference; 0 leaves the current setting.
  int threads = 0;
  // Segment() runs the joint's network with its eval-mode BatchNorms folded into the
  // convolutions (common/model/folded_unet.h), folded again on every call so it always reflects
  // the model's current weights and statistics; false runs the network as it is, in eval mode.
  // Both give the same labels up to float rounding; folding is faster (docs/performance.md).
  bool fold_batch_norm = true;
  // Run the folded network channels-last (NHWC); ignored without fold_batch_norm.
  bool channels_last = true;
  // Called after each batch with (slices done, slices in total), e.g. for a progress bar.
  std::function<void(int64_t done, int64_t total)> on_progress = {};
};

// Per-structure probabilities would be larger than the labels; only labels come out, plus what
// was decided on the way (for logs and reports).
struct Segmentation {
  common::data::Volume labels;  // uint8, 0 background, k = joint's structure k (1-based)
  int slice_axis = 2;
  int64_t slices = 0;
};

// Probabilities [n, classes, H, W] (summing to 1 over classes) for normalized slices
// [n, 1, H, W]; H and W are multiples of 32 and at least the model's input size.
using SliceProbabilityFn = std::function<at::Tensor(const at::Tensor& slices)>;

// The pipeline above around any slice predictor (the network, or a stand-in in tests): `config`
// gives the preprocessing, `classes` the channels `predict` returns. `predict` runs under
// c10::InferenceMode: what it returns is only read (copied out), never kept.
absl::StatusOr<Segmentation> SegmentVolume(
    const common::data::Volume& image, const v1::ModelConfig& config, int64_t classes,
    const SliceProbabilityFn& predict, int64_t batch_size,
    const std::function<void(int64_t, int64_t)>& on_progress = {});

class Segmenter {
 public:
  // Loads a model file or folder (ResolveModelPath). The network and preprocessing come from the
  // file's config metadata, or from `config` when given (it wins over the metadata; needed for
  // files that carry none). Weights must match the network exactly.
  static absl::StatusOr<std::unique_ptr<Segmenter>> Load(
      const std::filesystem::path& path, SegmenterOptions options = {},
      const std::optional<v1::ModelConfig>& config = std::nullopt);
  static absl::StatusOr<std::unique_ptr<Segmenter>> FromWeights(
      const v1::ModelConfig& config, const common::tensors::TensorMap& weights,
      SegmenterOptions options = {});
  // Wraps a network in memory (shared, not copied; put in eval mode while segmenting).
  static absl::StatusOr<std::unique_ptr<Segmenter>> FromModel(const v1::ModelConfig& config,
                                                              common::model::UNet model,
                                                              SegmenterOptions options = {});

  const v1::ModelConfig& config() const { return config_; }
  // Joint names in head order, and a joint's structures in label order (label 1, 2, ...).
  std::vector<std::string> Joints() const;
  absl::StatusOr<std::vector<std::string>> Structures(std::string_view joint) const;

  // `image`: a float32 scan (ReadVolume). InvalidArgument for an unknown joint (listing the
  // model's) or an invalid volume.
  absl::StatusOr<Segmentation> Segment(const common::data::Volume& image, std::string_view joint);

  // AdaBN (Li et al., 2016): replaces the running mean and variance of `joint`'s BatchNorm layers
  // (its domain; "shared" in the shared variant) by their average over the slices of `scans`,
  // prepared exactly as for segmentation. Forward passes run in training mode under NoGradGuard,
  // so no weight changes, only those statistics (a cumulative average over batches, not
  // BatchNorm's exponential one, so every scan counts equally). For a site whose own statistics
  // are missing, or were estimated on another scanner. Labels are not needed.
  absl::Status RecalibrateNormalization(const std::vector<common::data::Volume>& scans,
                                        std::string_view joint);

 private:
  Segmenter(v1::ModelConfig config, common::model::UNet model, SegmenterOptions options);

  v1::ModelConfig config_;
  common::model::UNet model_;
  SegmenterOptions options_;
};

}  // namespace fedjoint::site_agent::inference
