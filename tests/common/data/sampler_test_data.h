// In-memory slice datasets for the sampler and loader tests (no files).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/data/slice_dataset.h"

namespace fedjoint::common::data::test_util {

// Domain d ("joint<d>") gets slices_per_domain[d] slices of height x width. Every 4th slice (by
// dataset index) has a 1-labelled block and a matching bright block; images differ per slice.
inline std::shared_ptr<const SliceDataset> MakeDataset(
    const std::vector<int64_t>& slices_per_domain, int64_t height, int64_t width) {
  auto dataset = std::make_shared<SliceDataset>();
  int64_t n = 0;
  std::vector<int64_t> domains;
  for (size_t d = 0; d < slices_per_domain.size(); ++d) {
    dataset->joints.push_back("joint" + std::to_string(d));
    dataset->num_classes.push_back(2);
    for (int64_t i = 0; i < slices_per_domain[d]; ++i) domains.push_back(static_cast<int64_t>(d));
    n += slices_per_domain[d];
  }
  at::Tensor index = at::arange(n, at::kFloat).view({n, 1, 1});
  at::Tensor y = at::arange(height, at::kFloat).view({1, height, 1});
  at::Tensor x = at::arange(width, at::kFloat).view({1, 1, width});
  dataset->images = (x * 0.3f + y * 0.7f + index).sin().contiguous();
  dataset->labels = at::zeros({n, height, width}, at::kByte);
  dataset->foreground = at::arange(n, at::kLong).remainder(4).eq(0).contiguous();
  for (int64_t i = 0; i < n; i += 4) {
    dataset->labels[i].slice(0, height / 4, height / 2).slice(1, width / 4, width / 2).fill_(1);
    dataset->images[i].slice(0, height / 4, height / 2).slice(1, width / 4, width / 2).add_(3.0f);
  }
  dataset->domains = at::tensor(domains, at::kLong).view({n});
  dataset->subjects = at::zeros({n}, at::kLong);
  dataset->positions =
      at::arange(1, n + 1, at::kFloat).div_(static_cast<float>(std::max<int64_t>(n, 1)));
  dataset->labeled = at::ones({n}, at::kBool);
  dataset->subject_ids = {"s0"};
  return dataset;
}

}  // namespace fedjoint::common::data::test_util
