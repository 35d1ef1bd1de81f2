// `fedjoint-site check-data`: opens every file a manifest names and reports, per subject, what
// would make it unusable for training — before any training starts, so nothing is skipped
// silently later.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/data/manifest.h"
#include "common/data/volume.h"

namespace fedjoint::common::data {

struct GeometryTolerance {
  double spacing_relative = 1e-3;  // |a - b| <= tol * max(|a|, |b|)
  double origin_voxels = 1e-2;     // |a - b| <= tol * spacing, per axis
  double direction = 1e-4;         // per matrix entry
};

struct SubjectReport {
  std::string id;
  std::string joint;
  std::string domain;
  bool has_image = false;
  bool has_label = false;
  Geometry geometry;                    // the image's, when it could be read
  std::map<int, int64_t> label_counts;  // label value -> voxels (background excluded)
  std::vector<std::string> problems;    // each names the file and what is wrong

  bool usable() const { return problems.empty(); }
};

struct DataReport {
  std::vector<SubjectReport> subjects;
  int NumUnusable() const;
  // One table: subject, joint, domain, size, spacing, voxels per structure, status; then every
  // problem on its own line ("subject 'x': file: problem").
  std::string ToText(const Manifest& manifest) const;
};

// Returns the list of differences between two geometries ("spacing [0.5, 0.5, 3] vs ..."),
// empty when they agree within `tolerance`.
std::vector<std::string> CompareGeometry(const Geometry& image, const Geometry& label,
                                         const GeometryTolerance& tolerance = {});

DataReport CheckData(const Manifest& manifest, const GeometryTolerance& tolerance = {});

}  // namespace fedjoint::common::data
