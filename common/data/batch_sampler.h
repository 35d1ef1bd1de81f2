// Domain-balanced, reproducible training batches from a SliceDataset.
//
// Batch b of epoch e is a pure function of (options.seed, e, b): which slices it holds and how
// each is augmented. Training can therefore resume mid-epoch, and any number of loader threads
// produce exactly the same batches (background_loader.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/data/augment.h"
#include "common/data/slice_dataset.h"

namespace fedjoint::common::data {

struct Batch {
  at::Tensor images;     // float32 [B, 1, H, W]
  at::Tensor labels;     // int64 [B, H, W], structure indices (0 where the slice is unlabeled)
  at::Tensor domains;    // int64 [B]
  at::Tensor positions;  // float32 [B], relative slice position in (0, 1]
  at::Tensor indices;    // int64 [B], slice indices in the dataset
  at::Tensor labeled;    // bool [B]
  int64_t epoch = 0;
  int64_t index = 0;  // batch number within the epoch
};

struct BatchSamplerOptions {
  int64_t batch_size = 8;
  // 0: ceil(dataset size / batch_size), i.e. about one pass over the slices per epoch.
  int64_t batches_per_epoch = 0;
  // Relative weight of each domain id (size = dataset.joints.size()); each batch holds domain d in
  // proportion weight[d] / sum (systematic sampling: floor or ceil of B * share, never more off).
  // Empty: equal weights for every domain that has slices. A positive weight on a domain without
  // slices is an error.
  std::vector<double> domain_weights;
  // Probability that a draw within a domain picks among that domain's slices with structure
  // voxels (when it has any) instead of among all its slices: oversamples the foreground.
  double foreground_probability = 0.0;
  bool augment = true;
  AugmentOptions augment_options;
  uint64_t seed = 0;
};

class BatchSampler {
 public:
  // InvalidArgument for bad options, FailedPrecondition for an empty dataset or a weighted domain
  // without slices.
  static absl::StatusOr<std::shared_ptr<const BatchSampler>> Create(
      std::shared_ptr<const SliceDataset> dataset, BatchSamplerOptions options);

  const SliceDataset& dataset() const { return *dataset_; }
  const BatchSamplerOptions& options() const { return options_; }
  int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // The dataset slice indices of batch `batch` of `epoch` (no tensors, no augmentation).
  std::vector<int64_t> SampleIndices(int64_t epoch, int64_t batch) const;
  // The batch itself, augmented when options.augment. Thread-safe (const, no shared state).
  absl::StatusOr<Batch> MakeBatch(int64_t epoch, int64_t batch) const;

 private:
  BatchSampler(std::shared_ptr<const SliceDataset> dataset, BatchSamplerOptions options)
      : dataset_(std::move(dataset)), options_(std::move(options)) {}

  std::shared_ptr<const SliceDataset> dataset_;
  BatchSamplerOptions options_;
  int64_t batches_per_epoch_ = 0;
  std::vector<double> cumulative_share_;  // per domain id, cumulative normalized weight
  std::vector<std::vector<int64_t>> slices_of_domain_;
  std::vector<std::vector<int64_t>> foreground_of_domain_;
};

}  // namespace fedjoint::common::data
