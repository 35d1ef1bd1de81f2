#include "site_agent/inference/segmenter.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/base/status_macros.h"
#include "common/config/model_config_json.h"
#include "common/data/preprocess.h"
#include "common/data/slice_options.h"
#include "common/model/cpu_tensor_cache.h"
#include "common/model/domain_batch_norm.h"
#include "common/model/folded_unet.h"
#include "common/model/model_factory.h"
#include "site_agent/inference/weights.h"

namespace fedjoint::site_agent::inference {
namespace {

namespace data = common::data;
namespace model = common::model;

int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace

Segmenter::Segmenter(v1::ModelConfig config, model::UNet model, SegmenterOptions options)
    : config_(std::move(config)), model_(std::move(model)), options_(options) {}

absl::StatusOr<std::unique_ptr<Segmenter>> Segmenter::Load(
    const std::filesystem::path& path, SegmenterOptions options,
    const std::optional<v1::ModelConfig>& config) {
  ASSIGN_OR_RETURN(ModelFile file, ReadModelFile(path));
  if (config) {
    file.config = *config;
  } else if (!file.has_config) {
    return absl::FailedPreconditionError(fmt::format(
        "model {} does not say which network it is (no '{}' metadata): give the model config "
        "(e.g. --config with the site config whose `model` section trained it)",
        file.path.string(), common::config::kModelConfigMetadataKey));
  }
  absl::StatusOr<std::unique_ptr<Segmenter>> segmenter =
      FromWeights(file.config, file.weights, options);
  if (!segmenter.ok()) {
    return absl::Status(
        segmenter.status().code(),
        fmt::format("model {}: {}", file.path.string(), std::string(segmenter.status().message())));
  }
  return segmenter;
}

absl::StatusOr<std::unique_ptr<Segmenter>> Segmenter::FromWeights(
    const v1::ModelConfig& config, const common::tensors::TensorMap& weights,
    SegmenterOptions options) {
  RETURN_IF_ERROR(model::ValidateModelConfig(config));
  ASSIGN_OR_RETURN(model::UNet net, model::BuildUNet(config));
  RETURN_IF_ERROR(LoadStateDict(*net, weights, "the model's weights"));
  return FromModel(config, std::move(net), options);
}

absl::StatusOr<std::unique_ptr<Segmenter>> Segmenter::FromModel(const v1::ModelConfig& config,
                                                                model::UNet model,
                                                                SegmenterOptions options) {
  RETURN_IF_ERROR(model::ValidateModelConfig(config));
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        fmt::format("segmenter: batch_size {} must be >= 1", options.batch_size));
  }
  return std::unique_ptr<Segmenter>(new Segmenter(config, std::move(model), options));
}

std::vector<std::string> Segmenter::Joints() const {
  std::vector<std::string> joints;
  for (const auto& joint : config_.joints()) joints.push_back(joint.name());
  return joints;
}

absl::StatusOr<std::vector<std::string>> Segmenter::Structures(std::string_view joint) const {
  for (const auto& j : config_.joints()) {
    if (j.name() == joint)
      return std::vector<std::string>(j.structures().begin(), j.structures().end());
  }
  return absl::InvalidArgumentError(fmt::format("joint '{}' is not one of the model's joints [{}]",
                                                joint, fmt::join(Joints(), ", ")));
}

namespace {

// The scan as the network's input: canonical orientation, in-plane resampling, normalization,
// slices, padded (never cropped) to a multiple of 32 and at least the training size.
struct PreparedSlices {
  data::CanonicalVolume canonical;
  data::Volume work;  // canonical, resampled in-plane (the slices' grid)
  int axis = 2;
  bool resample = false;
  at::Tensor padded;  // [n, padded_h, padded_w]
  int64_t height = 0, width = 0;
};

absl::StatusOr<PreparedSlices> PrepareSlices(const data::Volume& image,
                                             const v1::ModelConfig& config) {
  RETURN_IF_ERROR(data::ValidateVolume(image, "scan to segment"));
  data::Volume scan = image;
  if (scan.voxels.scalar_type() != at::kFloat) scan.voxels = scan.voxels.to(at::kFloat);

  PreparedSlices out;
  ASSIGN_OR_RETURN(out.canonical, data::ToCanonicalOrientation(scan));
  ASSIGN_OR_RETURN(out.axis, model::SliceAxisFromConfig(config));
  if (out.axis == model::kAutoSliceAxis)
    out.axis = data::AutoSliceAxis(out.canonical.volume.geometry);
  const data::SliceDatasetOptions prep = data::SliceOptionsFromConfig(config, out.axis);

  out.work = out.canonical.volume;
  out.resample = prep.in_plane_spacing > 0;
  if (out.resample) {
    ASSIGN_OR_RETURN(out.work, data::ResampleInPlane(out.work, out.axis, prep.in_plane_spacing));
  }
  ASSIGN_OR_RETURN(data::IntensityStats stats,
                   data::ComputeIntensityStats(out.work.voxels, prep.normalize));
  at::Tensor normalized = data::ApplyIntensityNormalization(out.work.voxels, stats, prep.normalize);
  const double pad_value =
      stats.std < prep.normalize.min_std ? 0.0 : (stats.lower - stats.mean) / stats.std;
  ASSIGN_OR_RETURN(at::Tensor slices, data::ToSlices(normalized, out.axis));
  out.height = slices.size(1);
  out.width = slices.size(2);
  // Pad (never crop) to at least the training size and to a multiple of 32, the encoder's stride.
  const int64_t padded_h = std::max<int64_t>(prep.height, RoundUp(out.height, 32));
  const int64_t padded_w = std::max<int64_t>(prep.width, RoundUp(out.width, 32));
  ASSIGN_OR_RETURN(out.padded, data::CenterCropOrPad(slices, padded_h, padded_w, pad_value));
  return out;
}

}  // namespace

absl::StatusOr<Segmentation> SegmentVolume(
    const data::Volume& image, const v1::ModelConfig& config, int64_t classes,
    const SliceProbabilityFn& predict, int64_t batch_size,
    const std::function<void(int64_t, int64_t)>& on_progress) {
  if (classes < 1 || batch_size < 1) {
    return absl::InvalidArgumentError(fmt::format(
        "segmenting: {} classes, batch size {}: both must be >= 1", classes, batch_size));
  }
  ASSIGN_OR_RETURN(PreparedSlices prepared, PrepareSlices(image, config));
  const data::CanonicalVolume& canonical = prepared.canonical;
  const data::Volume& work = prepared.work;
  const int axis = prepared.axis;
  const bool resample = prepared.resample;
  const at::Tensor& padded = prepared.padded;
  const int64_t n = padded.size(0), height = prepared.height, width = prepared.width;
  const int64_t padded_h = padded.size(1), padded_w = padded.size(2);

  at::Tensor probabilities = torch::empty({n, classes, padded_h, padded_w}, torch::kFloat);
  try {
    // Stricter and cheaper than NoGradGuard (no version counters or view tracking); safe here
    // because the predictions are only copied into `probabilities`, a normal tensor.
    c10::InferenceMode inference_mode;
    // Every batch allocates the same activations again: reuse the freed ones rather than page
    // fresh memory in each time (activations of 32 MB and more are mmap'd and unmapped by glibc
    // on every batch). Only around the loop, so the memory goes back before post-processing.
    model::ScopedCpuTensorCache tensor_cache;
    for (int64_t start = 0; start < n; start += batch_size) {
      const int64_t count = std::min(batch_size, n - start);
      at::Tensor p = predict(padded.narrow(0, start, count).unsqueeze(1).contiguous());
      TORCH_CHECK(p.dim() == 4 && p.size(0) == count && p.size(1) == classes &&
                      p.size(2) == padded_h && p.size(3) == padded_w,
                  "the slice predictor returned ", p.sizes(), " for ", count, " slices of ",
                  padded_h, "x", padded_w, " and ", classes, " classes");
      probabilities.narrow(0, start, count).copy_(p);
      if (on_progress) on_progress(start + count, n);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(fmt::format("segmenting ({} slices {}x{}): {}", n, padded_h,
                                           padded_w, e.what_without_backtrace()));
  }
  ASSIGN_OR_RETURN(probabilities, data::UndoCenterCropOrPad(probabilities, height, width, 0.0));

  // Each class's probability map back onto the canonical grid, then the most probable class
  // (ties go to the lower class, so padding-only regions stay background).
  at::Tensor best_probability, labels;
  for (int64_t c = 0; c < classes; ++c) {
    ASSIGN_OR_RETURN(at::Tensor voxels,
                     data::FromSlices(probabilities.select(1, c).contiguous(), axis));
    if (resample) {
      ASSIGN_OR_RETURN(data::Volume back, data::ResampleToGrid(data::Volume{voxels, work.geometry},
                                                               canonical.volume.geometry));
      voxels = back.voxels;
    }
    if (c == 0) {
      best_probability = voxels.clone();
      labels = torch::zeros(voxels.sizes(), torch::kByte);
    } else {
      at::Tensor better = voxels.gt(best_probability);
      best_probability = torch::where(better, voxels, best_probability);
      labels.masked_fill_(better, c);
    }
  }
  ASSIGN_OR_RETURN(
      data::Volume result,
      data::FromCanonicalOrientation(data::Volume{labels.contiguous(), canonical.volume.geometry},
                                     canonical.reorientation));
  // FromCanonicalOrientation restores the original grid; keep the caller's geometry bits
  // regardless, so the output always overlays the input.
  result.geometry = image.geometry;
  return Segmentation{std::move(result), axis, n};
}

absl::StatusOr<Segmentation> Segmenter::Segment(const data::Volume& image, std::string_view joint) {
  std::optional<int64_t> joint_index = model_->JointIndex(joint);
  if (!joint_index) {
    return absl::InvalidArgumentError(fmt::format(
        "joint '{}' is not one of the model's joints [{}]", joint, fmt::join(Joints(), ", ")));
  }
  if (options_.threads > 0) at::set_num_threads(options_.threads);
  const std::vector<model::JointSpec> joints = model::JointsFromConfig(config_);
  const int64_t classes = joints[static_cast<size_t>(*joint_index)].NumClasses();
  at::Tensor channels;
  if (config_.variant() == "shared") {
    channels = torch::tensor(model::SharedChannelsOfJoint(joints, *joint_index), torch::kLong);
  }
  const int64_t j = *joint_index;
  // The joint's logits (the shared head's subset of channels), as probabilities.
  auto probabilities_of = [channels](at::Tensor logits) {
    if (channels.defined()) logits = logits.index_select(1, channels);
    return logits.softmax(1);
  };
  if (options_.fold_batch_norm) {
    // Folded on every call (a few ms): the model may have changed since the last one
    // (RecalibrateNormalization, or a trainer sharing it through FromModel).
    absl::StatusOr<model::FoldedUNet> folded = model::FoldBatchNorm(
        *model_, j, model::FoldOptions{.channels_last = options_.channels_last});
    if (!folded.ok()) return folded.status();
    auto net = std::make_shared<const model::FoldedUNet>(*std::move(folded));
    SliceProbabilityFn predict = [net, probabilities_of](const at::Tensor& x) {
      return probabilities_of(net->forward(x));
    };
    return SegmentVolume(image, config_, classes, predict, options_.batch_size,
                         options_.on_progress);
  }
  model::UNet net = model_;
  SliceProbabilityFn predict = [net, j, probabilities_of](const at::Tensor& x) mutable {
    return probabilities_of(net->forward(x, j).logits[static_cast<size_t>(j)]);
  };
  const bool was_training = net->is_training();
  net->eval();
  absl::StatusOr<Segmentation> result =
      SegmentVolume(image, config_, classes, predict, options_.batch_size, options_.on_progress);
  net->train(was_training);
  return result;
}

absl::Status Segmenter::RecalibrateNormalization(const std::vector<data::Volume>& scans,
                                                 std::string_view joint) {
  std::optional<int64_t> joint_index = model_->JointIndex(joint);
  if (!joint_index) {
    return absl::InvalidArgumentError(fmt::format(
        "joint '{}' is not one of the model's joints [{}]", joint, fmt::join(Joints(), ", ")));
  }
  if (scans.empty()) {
    return absl::InvalidArgumentError("recalibrating normalization: no scans given");
  }
  const std::string domain =
      config_.variant() == "shared" ? std::string("shared") : std::string(joint);
  common::model::CumulativeNormStatistics statistics(*model_, domain);
  if (statistics.size() == 0) {
    return absl::InternalError(
        fmt::format("the network has no normalization layer '*.norms.{}'", domain));
  }
  if (options_.threads > 0) at::set_num_threads(options_.threads);
  const bool was_training = model_->is_training();
  model_->train();
  absl::Status status = absl::OkStatus();
  int64_t batches = 0;
  try {
    torch::NoGradGuard no_grad;
    for (size_t s = 0; s < scans.size() && status.ok(); ++s) {
      absl::StatusOr<PreparedSlices> prepared = PrepareSlices(scans[s], config_);
      if (!prepared.ok()) {
        status = absl::Status(prepared.status().code(),
                              fmt::format("recalibration scan {}: {}", s + 1,
                                          std::string(prepared.status().message())));
        break;
      }
      const int64_t n = prepared->padded.size(0);
      for (int64_t start = 0; start < n; start += options_.batch_size) {
        const int64_t count = std::min(options_.batch_size, n - start);
        // BatchNorm in training mode needs more than one value per channel.
        if (count < 2) continue;
        model_->forward(prepared->padded.narrow(0, start, count).unsqueeze(1).contiguous(),
                        *joint_index);
        ++batches;
      }
    }
  } catch (const c10::Error& e) {
    status = absl::InternalError(
        fmt::format("recalibrating normalization: {}", e.what_without_backtrace()));
  }
  model_->train(was_training);
  if (status.ok() && batches == 0) {
    return absl::InvalidArgumentError(
        "recalibrating normalization: the scans gave no batch of at least 2 slices");
  }
  return status;
}

}  // namespace fedjoint::site_agent::inference
