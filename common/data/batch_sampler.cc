#include "common/data/batch_sampler.h"

#include <cmath>
#include <exception>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "common/data/rng.h"

namespace fedjoint::common::data {
namespace {

// Stream tags, so the sampling and augmentation streams of a batch never coincide.
constexpr uint64_t kSampleStream = 0x53414D50;   // "SAMP"
constexpr uint64_t kAugmentStream = 0x41554730;  // "AUG0"

}  // namespace

absl::StatusOr<std::shared_ptr<const BatchSampler>> BatchSampler::Create(
    std::shared_ptr<const SliceDataset> dataset, BatchSamplerOptions options) {
  if (!dataset || dataset->size() == 0) {
    return absl::FailedPreconditionError("batch sampler: the slice dataset is empty");
  }
  if (options.batch_size <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("batch sampler: batch_size {} must be positive", options.batch_size));
  }
  if (options.batches_per_epoch < 0) {
    return absl::InvalidArgumentError(fmt::format(
        "batch sampler: batches_per_epoch {} must be >= 0 (0: one pass over the slices)",
        options.batches_per_epoch));
  }
  if (!(options.foreground_probability >= 0.0 && options.foreground_probability <= 1.0)) {
    return absl::InvalidArgumentError(
        fmt::format("batch sampler: foreground_probability {} is not in [0, 1]",
                    options.foreground_probability));
  }
  if (options.augment) {
    if (absl::Status s = ValidateAugmentOptions(options.augment_options); !s.ok()) return s;
  }

  const auto num_domains = static_cast<int64_t>(dataset->joints.size());
  std::shared_ptr<BatchSampler> sampler(new BatchSampler(dataset, options));
  sampler->slices_of_domain_.resize(num_domains);
  sampler->foreground_of_domain_.resize(num_domains);
  const auto* domain = dataset->domains.data_ptr<int64_t>();
  const auto* foreground = dataset->foreground.data_ptr<bool>();
  for (int64_t i = 0; i < dataset->size(); ++i) {
    if (domain[i] < 0 || domain[i] >= num_domains) {
      return absl::InvalidArgumentError(
          fmt::format("batch sampler: slice {} has domain id {}, outside the {} joints", i,
                      domain[i], num_domains));
    }
    sampler->slices_of_domain_[domain[i]].push_back(i);
    if (foreground[i]) sampler->foreground_of_domain_[domain[i]].push_back(i);
  }

  std::vector<double> weights = options.domain_weights;
  if (weights.empty()) {
    for (int64_t d = 0; d < num_domains; ++d) {
      weights.push_back(sampler->slices_of_domain_[d].empty() ? 0.0 : 1.0);
    }
  }
  if (static_cast<int64_t>(weights.size()) != num_domains) {
    return absl::InvalidArgumentError(
        fmt::format("batch sampler: {} domain weights for {} joints [{}]", weights.size(),
                    num_domains, fmt::join(dataset->joints, ", ")));
  }
  double total = 0.0;
  for (int64_t d = 0; d < num_domains; ++d) {
    if (!(std::isfinite(weights[d]) && weights[d] >= 0)) {
      return absl::InvalidArgumentError(
          fmt::format("batch sampler: weight {} of joint '{}' must be finite and >= 0", weights[d],
                      dataset->joints[d]));
    }
    if (weights[d] > 0 && sampler->slices_of_domain_[d].empty()) {
      return absl::FailedPreconditionError(
          fmt::format("batch sampler: joint '{}' has weight {} but no slices in the dataset",
                      dataset->joints[d], weights[d]));
    }
    total += weights[d];
  }
  if (!(total > 0)) {
    return absl::InvalidArgumentError("batch sampler: every domain weight is 0");
  }
  double running = 0.0;
  int64_t last_weighted = 0;
  for (int64_t d = 0; d < num_domains; ++d) {
    running += weights[d];
    sampler->cumulative_share_.push_back(running / total);
    if (weights[d] > 0) last_weighted = d;
  }
  // Rounding must not leave a sliver above the last weighted domain.
  for (int64_t d = last_weighted; d < num_domains; ++d) sampler->cumulative_share_[d] = 1.0;
  sampler->options_.domain_weights = weights;

  sampler->batches_per_epoch_ =
      options.batches_per_epoch > 0
          ? options.batches_per_epoch
          : (dataset->size() + options.batch_size - 1) / options.batch_size;
  return std::shared_ptr<const BatchSampler>(std::move(sampler));
}

std::vector<int64_t> BatchSampler::SampleIndices(int64_t epoch, int64_t batch) const {
  const int64_t size = options_.batch_size;
  Rng rng(DeriveSeed(
      {options_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(batch), kSampleStream}));
  // Systematic sampling: points u, u + 1/B, ..., u + (B-1)/B on the cumulative shares give each
  // domain floor or ceil of B * share samples, with exactly that expectation.
  const double start = rng.Uniform() / static_cast<double>(size);
  std::vector<int64_t> domains(size);
  size_t d = 0;
  for (int64_t k = 0; k < size; ++k) {
    const double point = start + static_cast<double>(k) / static_cast<double>(size);
    while (d + 1 < cumulative_share_.size() &&
           (point >= cumulative_share_[d] || options_.domain_weights[d] <= 0)) {
      ++d;
    }
    domains[k] = static_cast<int64_t>(d);
  }
  Shuffle(domains, rng);
  std::vector<int64_t> indices(size);
  for (int64_t k = 0; k < size; ++k) {
    const auto& all = slices_of_domain_[domains[k]];
    const auto& fg = foreground_of_domain_[domains[k]];
    // Both draws always happen, so the foreground option does not shift the other samples.
    const bool want_foreground = rng.Bernoulli(options_.foreground_probability);
    const uint64_t pick = rng.NextU64();
    const auto& pool = want_foreground && !fg.empty() ? fg : all;
    // A 64-bit draw reduced modulo a pool of at most millions: the bias is below 1e-12.
    indices[k] = pool[pick % pool.size()];
  }
  return indices;
}

absl::StatusOr<Batch> BatchSampler::MakeBatch(int64_t epoch, int64_t batch) const {
  try {
    at::NoGradGuard no_grad;
    std::vector<int64_t> indices = SampleIndices(epoch, batch);
    Batch out;
    out.epoch = epoch;
    out.index = batch;
    out.indices = at::tensor(indices, at::kLong);
    out.domains = dataset_->domains.index_select(0, out.indices);
    out.positions = dataset_->positions.index_select(0, out.indices);
    out.labeled = dataset_->labeled.index_select(0, out.indices);
    at::Tensor images = dataset_->images.index_select(0, out.indices).unsqueeze(1);
    at::Tensor labels = dataset_->labels.index_select(0, out.indices);
    if (options_.augment) {
      std::vector<uint64_t> seeds(indices.size());
      for (size_t k = 0; k < seeds.size(); ++k) {
        seeds[k] = DeriveSeed({options_.seed, static_cast<uint64_t>(epoch),
                               static_cast<uint64_t>(batch), k, kAugmentStream});
      }
      absl::StatusOr<AugmentedSlices> augmented =
          Augment(images, labels, options_.augment_options, seeds);
      if (!augmented.ok()) return augmented.status();
      images = std::move(augmented->images);
      labels = std::move(augmented->labels);
    }
    out.images = images.contiguous();
    out.labels = labels.to(at::kLong).contiguous();
    return out;
  } catch (const std::exception& e) {
    return absl::InternalError(
        fmt::format("batch sampler: epoch {} batch {}: {}", epoch, batch, e.what()));
  }
}

}  // namespace fedjoint::common::data
