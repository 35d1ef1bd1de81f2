// The tasks (joints) a network segments and their label sets. Label 0 is background; label k
// (1-based) is structures[k-1]. No torch here: configs and the coordinator use it too.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace fedjoint::common::model {

struct JointSpec {
  std::string name;                     // [a-z][a-z0-9_]*, a segment of tensor names
  std::vector<std::string> structures;  // bones, in label order (label 1, 2, ...)

  int64_t NumClasses() const { return 1 + static_cast<int64_t>(structures.size()); }
};

// ankle (calcaneus, talus, tibia), knee (femur, tibia, patella, fibula), shoulder (humerus,
// scapula): the paper's datasets (METHODS.md §1) and the phantom generator's joints.
std::vector<JointSpec> DefaultJoints();

// Non-empty, unique names matching [a-z][a-z0-9_]* and not "shared" (the name of the single
// normalization of the shared variant); each joint has >= 1 structure, names non-empty and unique
// within the joint. Messages name the offending field, e.g. "joints[1].name".
absl::Status ValidateJoints(std::span<const JointSpec> joints);

std::optional<int64_t> FindJoint(std::span<const JointSpec> joints, std::string_view name);

// The shared variant's single head concatenates (joint, structure) pairs rather than merging by
// structure name: the knee's tibia (proximal) and the ankle's tibia (distal) look nothing alike
// and are labelled in different scans, so they get separate channels. Layout: channel 0 is
// background, then joint 0's structures, then joint 1's, ...
int64_t SharedHeadChannels(std::span<const JointSpec> joints);
// Maps label l of joint `joint` (0 = background) to its channel of the shared head; empty when
// `joint` is out of range.
std::vector<int64_t> SharedChannelsOfJoint(std::span<const JointSpec> joints, int64_t joint);

// Channels of a one-hot mask that fits every joint: max over joints of 1 + n_structures. Masks of
// a joint with fewer structures are zero-padded (see shape_autoencoder.h).
int64_t PaddedShapeChannels(std::span<const JointSpec> joints);

}  // namespace fedjoint::common::model
