// A site's training and validation slices for one model: the manifest split by subject
// (stratified by joint), each joint's scans cut along that joint's slice axis, labels mapped to
// the model's structure order by name.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/manifest.h"
#include "common/data/slice_dataset.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent::training {

struct TrainingData {
  std::shared_ptr<const common::data::SliceDataset> train;
  std::shared_ptr<const common::data::SliceDataset> validation;  // may hold no slice
  std::vector<std::string> train_subjects;
  std::vector<std::string> validation_subjects;
  // Per model joint: the canonical axis its scans were sliced along (-1: no scan of that joint).
  std::vector<int> slice_axes;
};

// Slices of labelled subjects only. Domain ids follow `model.joints()`; a manifest subject whose
// joint the model lacks is an error. A joint's structures are matched to the model's by name: a
// manifest structure the model does not know is an error; a model structure the manifest does
// not label is never supervised (logged). validation_fraction 0: everything trains.
absl::StatusOr<TrainingData> LoadTrainingData(const common::data::Manifest& manifest,
                                              const v1::ModelConfig& model,
                                              double validation_fraction, uint64_t seed);

// The datasets' slices one after the other (same joints); subject ids are concatenated.
common::data::SliceDataset ConcatSliceDatasets(const std::vector<common::data::SliceDataset>& parts,
                                               std::vector<std::string> joints,
                                               std::vector<int64_t> num_classes);

// Labelled training slices per joint (what a site declares when it joins a federation).
std::map<std::string, int64_t> SamplesByJoint(const common::data::SliceDataset& dataset);

}  // namespace fedjoint::site_agent::training
