#include "common/data/manifest.h"

#include <set>

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/atomic_file.h"

namespace fedjoint::common::data {
namespace {

namespace fs = std::filesystem;

class ManifestParser {
 public:
  explicit ManifestParser(fs::path file) : file_(std::move(file)) {}

  absl::StatusOr<Manifest> Parse(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_.string(), ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
    }
    Manifest manifest;
    manifest.file = file_;
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_.string(), ": expected a map with 'subjects' and 'labels'"));
    }
    for (const auto& entry : root) {
      std::string key = entry.first.Scalar();
      if (key != "subjects" && key != "labels") {
        Error(entry.first, absl::StrCat("unknown key '", key, "' (expected subjects, labels)"));
      }
    }
    ParseLabels(root["labels"], &manifest);
    ParseSubjects(root["subjects"], &manifest);
    if (!errors_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          file_.string(), ": ", errors_.size(), errors_.size() == 1 ? " problem\n" : " problems\n",
          absl::StrJoin(errors_, "\n")));
    }
    return manifest;
  }

 private:
  void Error(const YAML::Node& node, const std::string& message) {
    errors_.push_back(absl::StrCat(file_.string(), ":", node.Mark().line + 1, ": ", message));
  }

  void ParseLabels(const YAML::Node& labels, Manifest* manifest) {
    if (!labels) return;  // a site with only unlabeled scans needs no label map
    if (!labels.IsMap()) return Error(labels, "labels: expected a map joint -> {value: name}");
    for (const auto& joint_entry : labels) {
      std::string joint = joint_entry.first.Scalar();
      const YAML::Node& values = joint_entry.second;
      if (!values.IsMap() || values.size() == 0) {
        Error(values, absl::StrCat("labels.", joint, ": expected a non-empty map value -> name"));
        continue;
      }
      auto& map = manifest->labels[joint];
      std::set<std::string> names;
      for (const auto& v : values) {
        int value = 0;
        try {
          value = v.first.as<int>();
        } catch (const YAML::Exception&) {
          Error(v.first, absl::StrCat("labels.", joint, ": label value '", v.first.Scalar(),
                                      "' is not an integer"));
          continue;
        }
        if (value <= 0 || value > 32767) {
          Error(v.first, absl::StrCat("labels.", joint, ": label value ", value,
                                      " out of range (1..32767; 0 is background)"));
          continue;
        }
        std::string name = v.second.IsScalar() ? v.second.Scalar() : "";
        if (name.empty()) {
          Error(v.second,
                absl::StrCat("labels.", joint, ".", value, ": expected a structure name"));
          continue;
        }
        if (!names.insert(name).second) {
          Error(v.second, absl::StrCat("labels.", joint, ": structure '", name,
                                       "' is named by two label values"));
        }
        map[value] = name;
      }
    }
  }

  void ParseSubjects(const YAML::Node& subjects, Manifest* manifest) {
    if (!subjects) {
      errors_.push_back(absl::StrCat(file_.string(), ": missing required key 'subjects'"));
      return;
    }
    if (!subjects.IsSequence() || subjects.size() == 0) {
      return Error(subjects, "subjects: expected a non-empty list");
    }
    static const std::set<std::string> kKeys = {"id",    "image",  "label",
                                                "joint", "domain", "series_uid"};
    const fs::path base = file_.parent_path();
    for (size_t i = 0; i < subjects.size(); ++i) {
      const YAML::Node& s = subjects[i];
      const std::string where = absl::StrCat("subjects[", i, "]");
      if (!s.IsMap()) {
        Error(s, absl::StrCat(where, ": expected a map"));
        continue;
      }
      ManifestSubject subject;
      subject.line = s.Mark().line + 1;
      bool ok = true;
      for (const auto& e : s) {
        std::string key = e.first.Scalar();
        if (!kKeys.count(key)) {
          Error(e.first, absl::StrCat(where, ": unknown key '", key,
                                      "' (expected id, image, label, joint, domain, series_uid)"));
          ok = false;
        } else if (!e.second.IsScalar() || e.second.Scalar().empty()) {
          Error(e.second, absl::StrCat(where, ".", key, ": expected a non-empty string"));
          ok = false;
        }
      }
      auto get = [&](const char* key, bool required) -> std::string {
        const YAML::Node& n = s[key];
        if (n && n.IsScalar()) return n.Scalar();
        if (required && !n) {
          Error(s, absl::StrCat(where, ": missing required key '", key, "'"));
          ok = false;
        }
        return "";
      };
      subject.id = get("id", true);
      std::string image = get("image", true);
      std::string label = get("label", false);
      subject.joint = get("joint", true);
      subject.domain = get("domain", false);
      subject.series_uid = get("series_uid", false);
      if (!ok) continue;
      subject.image = fs::path(image).is_absolute() ? fs::path(image) : base / image;
      if (!label.empty()) {
        subject.label = fs::path(label).is_absolute() ? fs::path(label) : base / label;
      }
      manifest->subjects.push_back(std::move(subject));
    }
  }

  fs::path file_;
  std::vector<std::string> errors_;
};

}  // namespace

std::vector<std::string> Manifest::Structures(const std::string& joint) const {
  std::vector<std::string> out;
  auto it = labels.find(joint);
  if (it == labels.end()) return out;
  for (const auto& [value, name] : it->second) out.push_back(name);
  return out;
}

absl::StatusOr<Manifest> ParseManifest(const std::string& yaml_text,
                                       const std::filesystem::path& display_file) {
  return ManifestParser(display_file).Parse(yaml_text);
}

absl::StatusOr<Manifest> LoadManifest(const std::filesystem::path& file) {
  auto text = base::ReadSmallFile(file, 16u << 20);
  if (!text.ok()) return text.status();
  return ParseManifest(*text, file);
}

}  // namespace fedjoint::common::data
