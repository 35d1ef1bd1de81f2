#include "common/data/check_data.h"

#include <ATen/ATen.h>

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/data/volume_io.h"

namespace fedjoint::common::data {
namespace {

template <typename T, size_t N>
std::string Vec(const std::array<T, N>& v) {
  return absl::StrCat("[",
                      absl::StrJoin(v, ", ",
                                    [](std::string* out, T x) {
                                      if constexpr (std::is_floating_point_v<T>) {
                                        absl::StrAppend(out, absl::StrFormat("%.6g", x));
                                      } else {
                                        absl::StrAppend(out, x);
                                      }
                                    }),
                      "]");
}

std::map<int, int64_t> CountLabels(const at::Tensor& voxels) {
  std::map<int, int64_t> counts;
  at::Tensor flat = voxels.to(at::kInt).flatten();
  auto [values, inverse, histogram] = at::_unique2(flat, /*sorted=*/true, false, true);
  auto v = values.accessor<int, 1>();
  auto c = histogram.accessor<int64_t, 1>();
  for (int64_t i = 0; i < values.size(0); ++i) {
    if (v[i] != 0) counts[v[i]] = c[i];
  }
  return counts;
}

}  // namespace

std::vector<std::string> CompareGeometry(const Geometry& a, const Geometry& b,
                                         const GeometryTolerance& tol) {
  std::vector<std::string> diffs;
  if (a.size != b.size) diffs.push_back(absl::StrCat("size ", Vec(a.size), " vs ", Vec(b.size)));
  bool spacing_ok = true, origin_ok = true, direction_ok = true;
  for (int i = 0; i < 3; ++i) {
    double scale = std::max(std::abs(a.spacing[i]), std::abs(b.spacing[i]));
    if (std::abs(a.spacing[i] - b.spacing[i]) > tol.spacing_relative * scale) spacing_ok = false;
    if (std::abs(a.origin[i] - b.origin[i]) > tol.origin_voxels * scale) origin_ok = false;
  }
  for (int i = 0; i < 9; ++i) {
    if (std::abs(a.direction[i] - b.direction[i]) > tol.direction) direction_ok = false;
  }
  if (!spacing_ok)
    diffs.push_back(absl::StrCat("spacing ", Vec(a.spacing), " vs ", Vec(b.spacing)));
  if (!origin_ok) diffs.push_back(absl::StrCat("origin ", Vec(a.origin), " vs ", Vec(b.origin)));
  if (!direction_ok) {
    diffs.push_back(absl::StrCat("direction ", Vec(a.direction), " vs ", Vec(b.direction)));
  }
  return diffs;
}

int DataReport::NumUnusable() const {
  int n = 0;
  for (const auto& s : subjects) n += s.usable() ? 0 : 1;
  return n;
}

DataReport CheckData(const Manifest& manifest, const GeometryTolerance& tolerance) {
  DataReport report;
  std::set<std::string> ids;
  std::set<std::string> images;
  for (const ManifestSubject& subject : manifest.subjects) {
    SubjectReport r;
    r.id = subject.id;
    r.joint = subject.joint;
    r.domain = subject.domain;
    auto problem = [&](const std::string& what) { r.problems.push_back(what); };

    if (!ids.insert(subject.id).second) {
      problem(absl::StrCat(manifest.file.string(), ":", subject.line, ": duplicate subject id"));
    }
    if (!images.insert(subject.image.lexically_normal().string()).second) {
      problem(absl::StrCat(subject.image.string(), ": image listed by another subject too"));
    }
    auto joint_labels = manifest.labels.find(subject.joint);
    if (subject.label && joint_labels == manifest.labels.end()) {
      problem(absl::StrCat(manifest.file.string(), ":", subject.line, ": joint '", subject.joint,
                           "' has no entry under 'labels'"));
    }

    ReadOptions read_options;
    read_options.series_uid = subject.series_uid;
    auto image = ReadVolume(subject.image, read_options);
    if (!image.ok()) {
      problem(std::string(image.status().message()));
    } else {
      r.has_image = true;
      r.geometry = image->geometry;
    }

    if (subject.label) {
      auto label = ReadLabelVolume(*subject.label);
      if (!label.ok()) {
        problem(std::string(label.status().message()));
      } else {
        r.has_label = true;
        if (image.ok()) {
          auto diffs = CompareGeometry(image->geometry, label->geometry, tolerance);
          if (!diffs.empty()) {
            problem(absl::StrCat(subject.label->string(), ": geometry differs from the image: ",
                                 absl::StrJoin(diffs, "; ")));
          }
        }
        r.label_counts = CountLabels(label->voxels);
        if (r.label_counts.empty()) {
          problem(
              absl::StrCat(subject.label->string(), ": label volume is empty (background only)"));
        }
        if (joint_labels != manifest.labels.end()) {
          std::vector<int> unknown;
          for (const auto& [value, count] : r.label_counts) {
            if (!joint_labels->second.count(value)) unknown.push_back(value);
          }
          if (!unknown.empty()) {
            problem(absl::StrCat(subject.label->string(), ": label value(s) ",
                                 absl::StrJoin(unknown, ", "), " not in the label map of joint '",
                                 subject.joint, "'"));
          }
        }
      }
    }
    report.subjects.push_back(std::move(r));
  }
  return report;
}

std::string DataReport::ToText(const Manifest& manifest) const {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"subject", "joint", "domain", "size", "spacing (mm)", "label voxels", "status"});
  for (const auto& s : subjects) {
    std::string size = s.has_image ? absl::StrJoin(s.geometry.size, "x") : "-";
    std::string spacing = s.has_image
                              ? absl::StrJoin(s.geometry.spacing, "x",
                                              [](std::string* out, double v) {
                                                absl::StrAppend(out, absl::StrFormat("%.3g", v));
                                              })
                              : "-";
    std::string labels = "-";
    if (s.has_label) {
      auto joint = manifest.labels.find(s.joint);
      std::vector<std::string> parts;
      for (const auto& [value, count] : s.label_counts) {
        std::string name = absl::StrCat(value);
        if (joint != manifest.labels.end() && joint->second.count(value)) {
          name = joint->second.at(value);
        }
        parts.push_back(absl::StrCat(name, "=", count));
      }
      labels = parts.empty() ? "none" : absl::StrJoin(parts, " ");
    } else if (s.problems.empty()) {
      labels = "unlabeled";
    }
    rows.push_back({s.id, s.joint, s.domain.empty() ? "-" : s.domain, size, spacing, labels,
                    s.usable() ? "ok" : absl::StrCat("UNUSABLE (", s.problems.size(), ")")});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      absl::StrAppend(&out, row[c], std::string(width[c] - row[c].size() + 2, ' '));
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out.push_back('\n');
  }
  int unusable = NumUnusable();
  absl::StrAppend(&out, "\n", subjects.size(), " subject(s), ", unusable, " unusable\n");
  for (const auto& s : subjects) {
    for (const auto& p : s.problems) absl::StrAppend(&out, "subject '", s.id, "': ", p, "\n");
  }
  return out;
}

}  // namespace fedjoint::common::data
