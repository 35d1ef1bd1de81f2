#include "common/model/joint_spec.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::model {
namespace {

bool IsIdentifier(std::string_view name) {
  if (name.empty() || name[0] < 'a' || name[0] > 'z') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

std::vector<JointSpec> DefaultJoints() {
  return {{"ankle", {"calcaneus", "talus", "tibia"}},
          {"knee", {"femur", "tibia", "patella", "fibula"}},
          {"shoulder", {"humerus", "scapula"}}};
}

absl::Status ValidateJoints(std::span<const JointSpec> joints) {
  if (joints.empty()) return absl::InvalidArgumentError("joints: at least one joint is needed");
  std::set<std::string> names;
  for (std::size_t j = 0; j < joints.size(); ++j) {
    const JointSpec& joint = joints[j];
    std::string field = absl::StrCat("joints[", j, "]");
    if (!IsIdentifier(joint.name)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".name '", joint.name,
                                                     "' must match [a-z][a-z0-9_]* (it becomes a "
                                                     "segment of tensor names)"));
    }
    if (joint.name == "shared") {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".name 'shared' is reserved for the normalization of the shared variant"));
    }
    if (!names.insert(joint.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".name '", joint.name, "' is used by another joint"));
    }
    if (joint.structures.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " '", joint.name, "' has no structures"));
    }
    std::set<std::string> structures;
    for (std::size_t s = 0; s < joint.structures.size(); ++s) {
      const std::string& structure = joint.structures[s];
      if (structure.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".structures[", s, "] of '", joint.name, "' is empty"));
      }
      if (!structures.insert(structure).second) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".structures[", s, "] '", structure,
                                                       "' appears twice in '", joint.name, "'"));
      }
    }
  }
  return absl::OkStatus();
}

std::optional<int64_t> FindJoint(std::span<const JointSpec> joints, std::string_view name) {
  for (std::size_t j = 0; j < joints.size(); ++j) {
    if (joints[j].name == name) return static_cast<int64_t>(j);
  }
  return std::nullopt;
}

int64_t SharedHeadChannels(std::span<const JointSpec> joints) {
  int64_t channels = 1;
  for (const JointSpec& joint : joints) channels += static_cast<int64_t>(joint.structures.size());
  return channels;
}

std::vector<int64_t> SharedChannelsOfJoint(std::span<const JointSpec> joints, int64_t joint) {
  if (joint < 0 || joint >= static_cast<int64_t>(joints.size())) return {};
  int64_t first = 1;
  for (int64_t j = 0; j < joint; ++j) first += static_cast<int64_t>(joints[j].structures.size());
  std::vector<int64_t> channels{0};
  for (std::size_t s = 0; s < joints[joint].structures.size(); ++s) {
    channels.push_back(first + static_cast<int64_t>(s));
  }
  return channels;
}

int64_t PaddedShapeChannels(std::span<const JointSpec> joints) {
  int64_t channels = 1;
  for (const JointSpec& joint : joints) channels = std::max(channels, joint.NumClasses());
  return channels;
}

}  // namespace fedjoint::common::model
