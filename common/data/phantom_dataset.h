// Writes a folder of phantom subjects that a site can use as its data: NIfTI images and labels
// plus the site manifest (common/data/manifest.h) listing them.
//
//   OUT/subject-000_image.nii.gz   float32 image
//   OUT/subject-000_label.nii.gz   uint8 bone labels (omitted for unlabeled subjects)
//   OUT/manifest.yaml              the site manifest
//   OUT/phantoms.csv               what was drawn per subject (age, sex, size, pose, noise)
//
// manifest.yaml:
//   # fedjoint site manifest
//   subjects:
//     - id: knee-t1-000
//       image: subject-000_image.nii.gz
//       label: subject-000_label.nii.gz
//       joint: knee
//       domain: t1
//   labels:
//     knee: {1: femur, 2: tibia, 3: patella, 4: fibula}
//
// Every file is written atomically; the manifest and the metadata are written last, so a folder
// with a manifest always has every file it lists. An existing manifest is replaced: it lists only
// the subjects of this call.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/phantom.h"

namespace fedjoint::common::data {

struct PhantomDatasetEntry {
  std::string id;
  std::string image;                 // file name, relative to the folder
  std::optional<std::string> label;  // absent for unlabeled subjects
  double age_years = 0;
  std::string sex;
};

struct PhantomDataset {
  std::filesystem::path manifest;
  std::vector<PhantomDatasetEntry> subjects;
  std::uintmax_t bytes_written = 0;  // images and labels
};

// The file names used for subject `subject`: subject-007_image.nii.gz, subject-007_label.nii.gz.
std::string PhantomImageFileName(int subject);
std::string PhantomLabelFileName(int subject);

// The manifest text for `entries` (all of `options.joint` and `options.domain`).
std::string PhantomManifestYaml(const PhantomOptions& options,
                                const std::vector<PhantomDatasetEntry>& entries);

// Generates subjects options.first_subject .. first_subject + n_subjects - 1 into `out_dir`
// (created if missing). Errors: InvalidArgument for bad options or n_subjects < 1; the volume
// writer's and the file system's errors, naming the file.
absl::StatusOr<PhantomDataset> WritePhantomDataset(const PhantomOptions& options, int n_subjects,
                                                   const std::filesystem::path& out_dir);

}  // namespace fedjoint::common::data
