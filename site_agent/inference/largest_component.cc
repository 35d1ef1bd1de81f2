#include "site_agent/inference/largest_component.h"

#include <ATen/ATen.h>

#include <array>
#include <map>

#include <fmt/format.h>

namespace fedjoint::site_agent::inference {

absl::StatusOr<std::vector<ComponentCleanup>> KeepLargestComponents(common::data::Volume& labels) {
  if (absl::Status s = common::data::ValidateVolume(labels, "label volume"); !s.ok()) return s;
  if (labels.voxels.scalar_type() != at::kByte) {
    return absl::InvalidArgumentError(
        fmt::format("label volume: voxels are {}, expected uint8",
                    common::data::DtypeName(labels.voxels.scalar_type())));
  }
  const auto& size = labels.geometry.size;
  const int64_t nx = size[0], ny = size[1], nz = size[2];
  uint8_t* voxels = labels.voxels.data_ptr<uint8_t>();
  const int64_t n = nx * ny * nz;

  // component[v]: 0 unvisited, else 1-based component id. One flood fill per component with an
  // explicit stack (a bone has millions of voxels: recursion would overflow).
  std::vector<int32_t> component(static_cast<size_t>(n), 0);
  struct Found {
    uint8_t label;
    int64_t voxels;
  };
  std::vector<Found> found;  // by id - 1
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < n; ++start) {
    const uint8_t label = voxels[start];
    if (label == 0 || component[static_cast<size_t>(start)] != 0) continue;
    const auto id = static_cast<int32_t>(found.size() + 1);
    int64_t count = 0;
    stack.push_back(start);
    component[static_cast<size_t>(start)] = id;
    while (!stack.empty()) {
      const int64_t v = stack.back();
      stack.pop_back();
      ++count;
      const int64_t i = v % nx, j = (v / nx) % ny, k = v / (nx * ny);
      for (int64_t dk = -1; dk <= 1; ++dk) {
        const int64_t kk = k + dk;
        if (kk < 0 || kk >= nz) continue;
        for (int64_t dj = -1; dj <= 1; ++dj) {
          const int64_t jj = j + dj;
          if (jj < 0 || jj >= ny) continue;
          for (int64_t di = -1; di <= 1; ++di) {
            const int64_t ii = i + di;
            if (ii < 0 || ii >= nx) continue;
            const int64_t w = (kk * ny + jj) * nx + ii;
            if (voxels[w] != label || component[static_cast<size_t>(w)] != 0) continue;
            component[static_cast<size_t>(w)] = id;
            stack.push_back(w);
          }
        }
      }
    }
    found.push_back({label, count});
  }

  // The largest component of each label (first found wins ties).
  std::map<uint8_t, int32_t> keep;
  std::map<uint8_t, ComponentCleanup> summary;
  for (size_t c = 0; c < found.size(); ++c) {
    ComponentCleanup& s = summary[found[c].label];
    s.label = found[c].label;
    ++s.components;
    auto it = keep.find(found[c].label);
    if (it == keep.end() || found[c].voxels > found[static_cast<size_t>(it->second - 1)].voxels) {
      keep[found[c].label] = static_cast<int32_t>(c + 1);
    }
  }
  for (int64_t v = 0; v < n; ++v) {
    if (voxels[v] != 0 && keep[voxels[v]] != component[static_cast<size_t>(v)]) voxels[v] = 0;
  }
  std::vector<ComponentCleanup> result;
  for (auto& [label, s] : summary) {
    s.voxels_kept = found[static_cast<size_t>(keep[label] - 1)].voxels;
    for (size_t c = 0; c < found.size(); ++c) {
      if (found[c].label == label && static_cast<int32_t>(c + 1) != keep[label]) {
        s.voxels_removed += found[c].voxels;
      }
    }
    result.push_back(s);
  }
  return result;
}

}  // namespace fedjoint::site_agent::inference
