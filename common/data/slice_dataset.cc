#include "common/data/slice_dataset.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/base/status_macros.h"
#include "common/data/check_data.h"
#include "common/data/rng.h"
#include "common/data/volume_io.h"
#include "common/log/logging.h"

namespace fedjoint::common::data {
namespace {

// Scans more oblique than this are still used (reorientation keeps the obliquity in the direction
// matrix), but slices then cut the anatomy at an angle the other scans do not: worth a warning.
constexpr double kObliquityWarningDegrees = 20.0;

// The slices one subject contributes.
struct SubjectSlices {
  at::Tensor images;     // float32 [n, H, W]
  at::Tensor labels;     // uint8 [n, H, W]
  at::Tensor positions;  // float32 [n]
  at::Tensor foreground;
  int64_t total_slices = 0;  // before dropping empty slices
};

// Adds the subject and (unless the message already names it) the file to an error.
absl::Status WithContext(const absl::Status& status, const std::string& subject,
                         std::string_view what, const std::filesystem::path& file) {
  std::string message(status.message());
  const std::string path = file.string();
  std::string text = message.find(path) != std::string::npos
                         ? fmt::format("{}: {}: {}", subject, what, message)
                         : fmt::format("{}: {} {}: {}", subject, what, path, message);
  return absl::Status(status.code(), text);
}

absl::Status ValidateOptions(const SliceDatasetOptions& options,
                             const std::vector<std::string>& joints) {
  if (options.slice_axis < 0 || options.slice_axis > 2) {
    return absl::InvalidArgumentError(fmt::format(
        "slice dataset: slice_axis {} is not a voxel axis (0 sagittal, 1 coronal, 2 axial)",
        options.slice_axis));
  }
  if (options.height <= 0 || options.width <= 0) {
    return absl::InvalidArgumentError(fmt::format(
        "slice dataset: network size {}x{} must be positive", options.height, options.width));
  }
  if (!std::isfinite(options.in_plane_spacing)) {
    return absl::InvalidArgumentError("slice dataset: in_plane_spacing is not finite");
  }
  if (!(options.background_slice_fraction >= 0.0 && options.background_slice_fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        fmt::format("slice dataset: background_slice_fraction {} is outside [0, 1]",
                    options.background_slice_fraction));
  }
  if (joints.empty()) {
    return absl::InvalidArgumentError("slice dataset: the model's joint list is empty");
  }
  std::set<std::string> seen;
  for (const std::string& joint : joints) {
    if (!seen.insert(joint).second) {
      return absl::InvalidArgumentError(
          fmt::format("slice dataset: joint '{}' appears twice in the model's joint list [{}]",
                      joint, fmt::join(joints, ", ")));
    }
  }
  return absl::OkStatus();
}

// Which of `n` slices to keep: all with foreground, and a `fraction` of the others spread evenly.
std::vector<int64_t> SlicesToKeep(const at::Tensor& foreground, double fraction) {
  const auto* fg = foreground.data_ptr<bool>();
  const int64_t n = foreground.numel();
  std::vector<int64_t> empty;
  for (int64_t i = 0; i < n; ++i) {
    if (!fg[i]) empty.push_back(i);
  }
  const auto num_empty = static_cast<int64_t>(empty.size());
  const auto keep_empty = static_cast<int64_t>(std::llround(fraction * num_empty));
  std::vector<bool> keep(n, false);
  for (int64_t i = 0; i < n; ++i) keep[i] = fg[i];
  for (int64_t e = 0; e < keep_empty; ++e) {
    // The centre of the e-th of keep_empty equal runs of the empty slices.
    keep[empty[(2 * e + 1) * num_empty / (2 * keep_empty)]] = true;
  }
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    if (keep[i]) out.push_back(i);
  }
  return out;
}

absl::StatusOr<SubjectSlices> LoadSubject(const Manifest& manifest, const ManifestSubject& subject,
                                          const SliceDatasetOptions& options) {
  const std::string who =
      fmt::format("subject '{}' ({}:{})", subject.id, manifest.file.string(), subject.line);
  const auto& log = log::Get("data");

  ReadOptions read_options;
  read_options.series_uid = subject.series_uid;
  absl::StatusOr<Volume> image = ReadVolume(subject.image, read_options);
  if (!image.ok()) return WithContext(image.status(), who, "image", subject.image);

  std::optional<Volume> label;
  if (subject.label) {
    absl::StatusOr<Volume> read = ReadLabelVolume(*subject.label);
    if (!read.ok()) return WithContext(read.status(), who, "label", *subject.label);
    std::vector<std::string> diffs = CompareGeometry(image->geometry, read->geometry);
    if (!diffs.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: label {} is not on the grid of image {}: {}", who,
                      subject.label->string(), subject.image.string(), fmt::join(diffs, "; ")));
    }
    auto map = manifest.labels.find(subject.joint);
    if (map == manifest.labels.end()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: the manifest has no 'labels' entry for joint '{}', so label {} cannot "
                      "be mapped to structures",
                      who, subject.joint, subject.label->string()));
    }
    LabelMapping mapping;
    int64_t index = 0;
    for (const auto& [value, name] : map->second) mapping.value_to_index[value] = ++index;
    absl::StatusOr<at::Tensor> remapped = RemapLabels(read->voxels, mapping);
    if (!remapped.ok()) return WithContext(remapped.status(), who, "label", *subject.label);
    label = Volume{*remapped, read->geometry};
  }

  absl::StatusOr<CanonicalVolume> canonical = ToCanonicalOrientation(*image);
  if (!canonical.ok()) return WithContext(canonical.status(), who, "image", subject.image);
  if (canonical->reorientation.obliquity_degrees > kObliquityWarningDegrees) {
    log->warn("{}: image is {:.1f} degrees oblique; slices are cut along the nearest LPS axes", who,
              canonical->reorientation.obliquity_degrees);
  }
  Volume image_volume = std::move(canonical->volume);
  Volume label_volume;
  if (label) {
    absl::StatusOr<CanonicalVolume> canonical_label = ToCanonicalOrientation(*label);
    if (!canonical_label.ok()) {
      return WithContext(canonical_label.status(), who, "label", *subject.label);
    }
    label_volume = std::move(canonical_label->volume);
    // The grids agree within CompareGeometry's tolerance; make them identical so both resample
    // onto exactly the same grid.
    label_volume.geometry = image_volume.geometry;
  }

  if (options.in_plane_spacing > 0) {
    ResampleOptions linear;
    absl::StatusOr<Volume> resampled =
        ResampleInPlane(image_volume, options.slice_axis, options.in_plane_spacing, linear);
    if (!resampled.ok()) return WithContext(resampled.status(), who, "image", subject.image);
    image_volume = std::move(*resampled);
    if (label) {
      ResampleOptions nearest;
      nearest.interpolation = Interpolation::kNearest;
      resampled =
          ResampleInPlane(label_volume, options.slice_axis, options.in_plane_spacing, nearest);
      if (!resampled.ok()) return WithContext(resampled.status(), who, "label", *subject.label);
      label_volume = std::move(*resampled);
    }
  }

  absl::StatusOr<IntensityStats> stats =
      ComputeIntensityStats(image_volume.voxels, options.normalize);
  if (!stats.ok()) return WithContext(stats.status(), who, "image", subject.image);
  at::Tensor normalized =
      ApplyIntensityNormalization(image_volume.voxels, *stats, options.normalize);
  const double pad_value =
      stats->std < options.normalize.min_std ? 0.0 : (stats->lower - stats->mean) / stats->std;

  absl::StatusOr<at::Tensor> slices = ToSlices(normalized, options.slice_axis);
  if (!slices.ok()) return WithContext(slices.status(), who, "image", subject.image);
  const int64_t n = slices->size(0);
  ASSIGN_OR_RETURN(at::Tensor images,
                   CenterCropOrPad(*slices, options.height, options.width, pad_value));
  at::Tensor labels;
  if (label) {
    absl::StatusOr<at::Tensor> label_slices = ToSlices(label_volume.voxels, options.slice_axis);
    if (!label_slices.ok()) return WithContext(label_slices.status(), who, "label", *subject.label);
    ASSIGN_OR_RETURN(labels, CenterCropOrPad(*label_slices, options.height, options.width, 0.0));
  } else {
    labels = at::zeros({n, options.height, options.width}, at::kByte);
  }

  SubjectSlices out;
  out.total_slices = n;
  at::Tensor foreground = labels.view({n, -1}).ne(0).any(1).contiguous();
  at::Tensor positions =
      at::arange(1, n + 1, at::kDouble).div_(static_cast<double>(n)).to(at::kFloat);
  if (label && options.background_slice_fraction < 1.0) {
    at::Tensor keep =
        at::tensor(SlicesToKeep(foreground, options.background_slice_fraction), at::kLong);
    images = images.index_select(0, keep);
    labels = labels.index_select(0, keep);
    positions = positions.index_select(0, keep);
    foreground = foreground.index_select(0, keep);
  }
  out.images = images.contiguous();
  out.labels = labels.contiguous();
  out.positions = positions.contiguous();
  out.foreground = foreground.contiguous();
  return out;
}

// Labeled subjects of each joint (manifest order), and the unlabeled ones.
struct Strata {
  std::map<std::string, std::vector<size_t>> labeled_by_joint;
  std::vector<size_t> unlabeled;
};

Strata Stratify(const Manifest& manifest) {
  Strata strata;
  for (size_t i = 0; i < manifest.subjects.size(); ++i) {
    const ManifestSubject& s = manifest.subjects[i];
    if (s.label) {
      strata.labeled_by_joint[s.joint].push_back(i);
    } else {
      strata.unlabeled.push_back(i);
    }
  }
  return strata;
}

}  // namespace

absl::StatusOr<SliceDataset> BuildSliceDataset(const Manifest& manifest,
                                               const std::vector<std::string>& joints,
                                               const SliceDatasetOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options, joints));
  std::map<std::string, int64_t> domain_of;
  for (size_t d = 0; d < joints.size(); ++d) domain_of[joints[d]] = static_cast<int64_t>(d);
  // Check every subject's joint before reading anything: a wrong joint is a configuration error
  // and should not wait behind minutes of reading.
  for (const ManifestSubject& subject : manifest.subjects) {
    if (!domain_of.contains(subject.joint)) {
      return absl::InvalidArgumentError(fmt::format(
          "subject '{}' ({}:{}): joint '{}' is not one of the model's joints [{}]", subject.id,
          manifest.file.string(), subject.line, subject.joint, fmt::join(joints, ", ")));
    }
  }

  const auto& log = log::Get("data");
  SliceDataset dataset;
  dataset.joints = joints;
  for (const std::string& joint : joints) {
    auto it = manifest.labels.find(joint);
    dataset.num_classes.push_back(
        it == manifest.labels.end() ? 0 : static_cast<int64_t>(it->second.size()) + 1);
  }
  std::vector<at::Tensor> images, labels, domains, subjects, positions, labeled, foreground;
  int64_t skipped_unlabeled = 0;
  const size_t total = manifest.subjects.size();
  for (size_t i = 0; i < total; ++i) {
    const ManifestSubject& subject = manifest.subjects[i];
    if (!subject.label && !options.include_unlabeled) {
      ++skipped_unlabeled;
      continue;
    }
    ASSIGN_OR_RETURN(SubjectSlices slices, LoadSubject(manifest, subject, options));
    const int64_t n = slices.images.size(0);
    const auto subject_index = static_cast<int64_t>(dataset.subject_ids.size());
    dataset.subject_ids.push_back(subject.id);
    const int64_t with_structures = slices.foreground.sum().item<int64_t>();
    log->info("subject {}/{} '{}' ({}): {} of {} slices kept, {} with structures", i + 1, total,
              subject.id, subject.joint, n, slices.total_slices, with_structures);
    images.push_back(std::move(slices.images));
    labels.push_back(std::move(slices.labels));
    positions.push_back(std::move(slices.positions));
    foreground.push_back(std::move(slices.foreground));
    domains.push_back(at::full({n}, domain_of.at(subject.joint), at::kLong));
    subjects.push_back(at::full({n}, subject_index, at::kLong));
    labeled.push_back(at::full({n}, subject.label.has_value(), at::kBool));
  }
  if (skipped_unlabeled > 0) {
    log->info("{} unlabeled subject(s) left out (include_unlabeled is off)", skipped_unlabeled);
  }
  if (images.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: no subject to train on ({} subject(s), {} without a label; include_unlabeled is {})",
        manifest.file.string(), total, skipped_unlabeled,
        options.include_unlabeled ? "on" : "off"));
  }
  dataset.images = at::cat(images);
  dataset.labels = at::cat(labels);
  dataset.domains = at::cat(domains);
  dataset.subjects = at::cat(subjects);
  dataset.positions = at::cat(positions);
  dataset.labeled = at::cat(labeled);
  dataset.foreground = at::cat(foreground);
  log->info("slice dataset: {} slices of {}x{} from {} subject(s)", dataset.size(), options.height,
            options.width, dataset.subject_ids.size());
  return dataset;
}

absl::StatusOr<SubjectSplit> SplitSubjects(const Manifest& manifest, double validation_fraction,
                                           uint64_t seed) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0)) {
    return absl::InvalidArgumentError(fmt::format(
        "subject split: validation fraction {} is outside [0, 1)", validation_fraction));
  }
  Strata strata = Stratify(manifest);
  SubjectSplit split;
  split.train = strata.unlabeled;
  for (auto& [joint, members] : strata.labeled_by_joint) {
    // One stream per joint, so adding a subject of one joint does not reshuffle the others.
    Rng rng(DeriveSeed({seed, Fingerprint(joint)}));
    std::vector<size_t> shuffled = members;
    Shuffle(shuffled, rng);
    const auto n = static_cast<int64_t>(shuffled.size());
    const int64_t n_val =
        std::min<int64_t>(n - 1, std::llround(validation_fraction * static_cast<double>(n)));
    for (int64_t k = 0; k < n; ++k) {
      (k < n_val ? split.validation : split.train).push_back(shuffled[k]);
    }
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

absl::StatusOr<std::vector<SubjectSplit>> KFoldSplits(const Manifest& manifest, int folds,
                                                      uint64_t seed) {
  if (folds < 2) {
    return absl::InvalidArgumentError(
        fmt::format("k-fold split: {} folds; need at least 2", folds));
  }
  Strata strata = Stratify(manifest);
  size_t num_labeled = 0;
  for (const auto& [joint, members] : strata.labeled_by_joint) num_labeled += members.size();
  if (num_labeled < static_cast<size_t>(folds)) {
    return absl::InvalidArgumentError(fmt::format(
        "k-fold split: {} labeled subject(s) cannot fill {} folds", num_labeled, folds));
  }
  std::vector<int> fold_of(manifest.subjects.size(), -1);
  int next_fold = 0;
  for (const auto& [joint, members] : strata.labeled_by_joint) {
    Rng rng(DeriveSeed({seed, Fingerprint(joint)}));
    std::vector<size_t> shuffled = members;
    Shuffle(shuffled, rng);
    for (size_t index : shuffled) {
      fold_of[index] = next_fold;
      next_fold = (next_fold + 1) % folds;
    }
  }
  std::vector<SubjectSplit> splits(folds);
  for (int f = 0; f < folds; ++f) {
    for (size_t i = 0; i < fold_of.size(); ++i) {
      (fold_of[i] == f ? splits[f].validation : splits[f].train).push_back(i);
    }
  }
  return splits;
}

Manifest SelectSubjects(const Manifest& manifest, std::span<const size_t> indices) {
  Manifest out;
  out.file = manifest.file;
  out.labels = manifest.labels;
  for (size_t i : indices) out.subjects.push_back(manifest.subjects.at(i));
  return out;
}

}  // namespace fedjoint::common::data
