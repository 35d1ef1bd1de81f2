// The site manifest: which scans a site has, which joint each shows, where its label is, and what
// each label value means. Written by hand by a hospital team (or by `fedjoint-site phantoms`):
//
//   subjects:
//     - id: knee-t1-000
//       image: subject-000_image.nii.gz      # file, or a DICOM folder
//       label: subject-000_label.nii.gz      # optional: unlabeled scans omit it
//       joint: knee
//       domain: t1                           # MR contrast / acquisition, free text
//       series_uid: 1.2.3...                 # optional, DICOM folders only
//   labels:                                  # per joint: label value -> structure name
//     knee: {1: femur, 2: tibia, 3: patella, 4: fibula}
//
// Relative paths are resolved against the manifest's folder.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fedjoint::common::data {

struct ManifestSubject {
  std::string id;
  std::filesystem::path image;
  std::optional<std::filesystem::path> label;
  std::string joint;
  std::string domain;
  std::string series_uid;
  int line = 0;  // 1-based line of the entry in the manifest, for messages
};

struct Manifest {
  std::filesystem::path file;
  std::vector<ManifestSubject> subjects;
  // joint -> (label value -> structure name)
  std::map<std::string, std::map<int, std::string>> labels;

  // The structure names of `joint` ordered by label value (the output head's channel order).
  std::vector<std::string> Structures(const std::string& joint) const;
};

// Parses and checks the structure of a manifest (not the files it points to: see CheckData).
// Every structural problem is reported at once, one per line as "FILE:LINE: what is wrong".
absl::StatusOr<Manifest> LoadManifest(const std::filesystem::path& file);
absl::StatusOr<Manifest> ParseManifest(const std::string& yaml_text,
                                       const std::filesystem::path& display_file);

}  // namespace fedjoint::common::data
