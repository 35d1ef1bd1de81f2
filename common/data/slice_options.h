// The slicing that goes with a ModelConfig: which axis to cut along and how slices are resampled,
// normalized and cropped, so training, evaluation and `segment` prepare a scan the same way.
#pragma once

#include "common/data/slice_dataset.h"
#include "common/data/volume.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::common::data {

// The acquisition's slice direction of a canonical (LPS) grid: the axis with the largest spacing
// (ties: the later axis, so an isotropic volume is cut axially).
int AutoSliceAxis(const Geometry& canonical);

// Slicing, resampling, normalization and crop/pad of the slice dataset for this model, cutting
// along `slice_axis` (0..2, already resolved; see common/model/model_factory.h).
SliceDatasetOptions SliceOptionsFromConfig(const v1::ModelConfig& config, int slice_axis);

}  // namespace fedjoint::common::data
