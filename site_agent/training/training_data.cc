#include "site_agent/training/training_data.h"

#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/base/status_macros.h"
#include "common/data/preprocess.h"
#include "common/data/slice_options.h"
#include "common/data/volume_io.h"
#include "common/log/logging.h"
#include "common/model/model_factory.h"

namespace fedjoint::site_agent::training {
namespace {

namespace data = common::data;
namespace fs = std::filesystem;

// The acquisition's slice direction of a joint's scans, from its first scan.
absl::StatusOr<int> SliceAxisOfJoint(const data::ManifestSubject& subject) {
  data::ReadOptions options;
  options.series_uid = subject.series_uid;
  absl::StatusOr<data::Volume> image = data::ReadVolume(subject.image, options);
  if (!image.ok()) {
    return absl::Status(image.status().code(), fmt::format("subject '{}': {}", subject.id,
                                                           std::string(image.status().message())));
  }
  ASSIGN_OR_RETURN(data::CanonicalVolume canonical, data::ToCanonicalOrientation(*image));
  return data::AutoSliceAxis(canonical.volume.geometry);
}

// Manifest structure index (1..K, ascending label value) -> model structure index, by name.
absl::StatusOr<at::Tensor> StructureLut(const data::Manifest& manifest,
                                        const v1::JointConfig& joint) {
  const std::vector<std::string> names = manifest.Structures(joint.name());
  std::vector<uint8_t> lut(names.size() + 1, 0);
  std::vector<std::string> unlabeled;
  for (int s = 0; s < joint.structures_size(); ++s) {
    auto it = std::find(names.begin(), names.end(), joint.structures(s));
    if (it == names.end()) {
      unlabeled.push_back(joint.structures(s));
    } else {
      lut[static_cast<size_t>(it - names.begin()) + 1] = static_cast<uint8_t>(s + 1);
    }
  }
  for (size_t k = 0; k < names.size(); ++k) {
    if (lut[k + 1] == 0) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: joint '{}' labels structure '{}', which the model does not segment (its "
          "structures: [{}])",
          manifest.file.string(), joint.name(), names[k], fmt::join(joint.structures(), ", ")));
    }
  }
  if (!unlabeled.empty()) {
    common::log::Get("train")->warn(
        "joint '{}': the manifest labels no {}; those output channels get no supervision here",
        joint.name(), fmt::join(unlabeled, ", "));
  }
  return torch::tensor(lut, torch::kByte);
}

// Slices of `subjects` (indices into the manifest), joint by joint along each joint's axis.
absl::StatusOr<data::SliceDataset> BuildSplit(const data::Manifest& manifest,
                                              const std::vector<size_t>& subjects,
                                              const v1::ModelConfig& model,
                                              const std::vector<std::string>& joints,
                                              const std::vector<int>& axes) {
  std::vector<data::SliceDataset> parts;
  for (size_t j = 0; j < joints.size(); ++j) {
    std::vector<size_t> members;
    for (size_t i : subjects) {
      if (manifest.subjects[i].joint == joints[j] && manifest.subjects[i].label) {
        members.push_back(i);
      }
    }
    if (members.empty()) continue;
    ASSIGN_OR_RETURN(data::SliceDataset part,
                     data::BuildSliceDataset(data::SelectSubjects(manifest, members), joints,
                                             data::SliceOptionsFromConfig(model, axes[j])));
    ASSIGN_OR_RETURN(at::Tensor lut, StructureLut(manifest, model.joints(static_cast<int>(j))));
    part.labels = lut.index_select(0, part.labels.reshape({-1}).to(torch::kLong))
                      .view(part.labels.sizes())
                      .contiguous();
    parts.push_back(std::move(part));
  }
  std::vector<int64_t> classes;
  for (const auto& joint : model.joints()) classes.push_back(joint.structures_size() + 1);
  return ConcatSliceDatasets(parts, joints, classes);
}

}  // namespace

data::SliceDataset ConcatSliceDatasets(const std::vector<data::SliceDataset>& parts,
                                       std::vector<std::string> joints,
                                       std::vector<int64_t> num_classes) {
  data::SliceDataset out;
  out.joints = std::move(joints);
  out.num_classes = std::move(num_classes);
  std::vector<at::Tensor> images, labels, domains, subjects, positions, labeled, foreground;
  for (const data::SliceDataset& part : parts) {
    if (part.size() == 0) continue;
    const auto offset = static_cast<int64_t>(out.subject_ids.size());
    out.subject_ids.insert(out.subject_ids.end(), part.subject_ids.begin(), part.subject_ids.end());
    images.push_back(part.images);
    labels.push_back(part.labels);
    domains.push_back(part.domains);
    subjects.push_back(part.subjects + offset);
    positions.push_back(part.positions);
    labeled.push_back(part.labeled);
    foreground.push_back(part.foreground);
  }
  if (images.empty()) return out;
  out.images = torch::cat(images).contiguous();
  out.labels = torch::cat(labels).contiguous();
  out.domains = torch::cat(domains).contiguous();
  out.subjects = torch::cat(subjects).contiguous();
  out.positions = torch::cat(positions).contiguous();
  out.labeled = torch::cat(labeled).contiguous();
  out.foreground = torch::cat(foreground).contiguous();
  return out;
}

std::map<std::string, int64_t> SamplesByJoint(const data::SliceDataset& dataset) {
  std::map<std::string, int64_t> samples;
  if (dataset.size() == 0) return samples;
  at::Tensor counts =
      torch::bincount(dataset.domains, {}, static_cast<int64_t>(dataset.joints.size()));
  for (size_t j = 0; j < dataset.joints.size(); ++j) {
    const int64_t n = counts[static_cast<int64_t>(j)].item<int64_t>();
    if (n > 0) samples[dataset.joints[j]] = n;
  }
  return samples;
}

absl::StatusOr<TrainingData> LoadTrainingData(const data::Manifest& manifest,
                                              const v1::ModelConfig& model,
                                              double validation_fraction, uint64_t seed) {
  RETURN_IF_ERROR(common::model::ValidatePreprocessing(model));
  const auto& log = common::log::Get("train");
  std::vector<std::string> joints;
  for (const auto& joint : model.joints()) joints.push_back(joint.name());
  for (const data::ManifestSubject& subject : manifest.subjects) {
    if (std::find(joints.begin(), joints.end(), subject.joint) == joints.end()) {
      return absl::InvalidArgumentError(fmt::format(
          "{}:{}: subject '{}' shows joint '{}', which the model does not segment ([{}])",
          manifest.file.string(), subject.line, subject.id, subject.joint,
          fmt::join(joints, ", ")));
    }
  }
  ASSIGN_OR_RETURN(int configured_axis, common::model::SliceAxisFromConfig(model));
  TrainingData out;
  out.slice_axes.assign(joints.size(), -1);
  for (size_t j = 0; j < joints.size(); ++j) {
    auto first = std::find_if(manifest.subjects.begin(), manifest.subjects.end(),
                              [&](const data::ManifestSubject& s) {
                                return s.joint == joints[j] && s.label.has_value();
                              });
    if (first == manifest.subjects.end()) continue;
    if (configured_axis == common::model::kAutoSliceAxis) {
      ASSIGN_OR_RETURN(out.slice_axes[j], SliceAxisOfJoint(*first));
    } else {
      out.slice_axes[j] = configured_axis;
    }
    log->info("joint '{}': {} slices (axis {})", joints[j],
              common::model::SliceAxisName(out.slice_axes[j]), out.slice_axes[j]);
  }

  ASSIGN_OR_RETURN(data::SubjectSplit split,
                   data::SplitSubjects(manifest, validation_fraction, seed));
  ASSIGN_OR_RETURN(data::SliceDataset train,
                   BuildSplit(manifest, split.train, model, joints, out.slice_axes));
  if (train.size() == 0) {
    return absl::InvalidArgumentError(
        fmt::format("{}: no labelled subject to train on ({} subject(s) in the manifest)",
                    manifest.file.string(), manifest.subjects.size()));
  }
  ASSIGN_OR_RETURN(data::SliceDataset validation,
                   BuildSplit(manifest, split.validation, model, joints, out.slice_axes));
  out.train_subjects = train.subject_ids;
  out.validation_subjects = validation.subject_ids;
  log->info("training on {} slices of {} subject(s), validating on {} slices of {} subject(s)",
            train.size(), train.subject_ids.size(), validation.size(),
            validation.subject_ids.size());
  out.train = std::make_shared<const data::SliceDataset>(std::move(train));
  out.validation = std::make_shared<const data::SliceDataset>(std::move(validation));
  return out;
}

}  // namespace fedjoint::site_agent::training
