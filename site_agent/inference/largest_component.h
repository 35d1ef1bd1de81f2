// Keeps, for each structure of a label volume, only its largest 26-connected component: a bone is
// one piece, so islands elsewhere in the scan (a patch of marrow-like signal in the other leg, a
// blob at the field-of-view edge) are false positives. Removed voxels become background.
//
// 26-connectivity (faces, edges and corners) because thin parts of a child's bone (fibula shaft,
// growth plates) may touch only diagonally across slices at anisotropic spacing; 6-connectivity
// would split them and drop real bone. Voxel counts decide "largest"; ties keep the component
// found first in memory order, so the result is deterministic.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/volume.h"

namespace fedjoint::site_agent::inference {

struct ComponentCleanup {
  int64_t label = 0;
  int64_t components = 0;      // 26-connected components found
  int64_t voxels_kept = 0;     // in the largest
  int64_t voxels_removed = 0;  // in all the others
};

// `labels`: a uint8 label volume (modified in place). One entry per label present (ascending).
absl::StatusOr<std::vector<ComponentCleanup>> KeepLargestComponents(common::data::Volume& labels);

}  // namespace fedjoint::site_agent::inference
