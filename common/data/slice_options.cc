#include "common/data/slice_options.h"

namespace fedjoint::common::data {

int AutoSliceAxis(const Geometry& canonical) {
  int axis = 2;
  for (int a = 1; a >= 0; --a) {
    if (canonical.spacing[a] > canonical.spacing[axis] * (1 + 1e-6)) axis = a;
  }
  return axis;
}

SliceDatasetOptions SliceOptionsFromConfig(const v1::ModelConfig& config, int slice_axis) {
  SliceDatasetOptions options;
  options.slice_axis = slice_axis;
  options.in_plane_spacing = config.in_plane_spacing_mm();
  options.height = config.input_size();
  options.width = config.input_size();
  return options;
}

}  // namespace fedjoint::common::data
