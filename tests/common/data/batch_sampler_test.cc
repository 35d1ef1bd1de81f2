#include "common/data/batch_sampler.h"

#include <map>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/data/sampler_test_data.h"

namespace fedjoint::common::data {
namespace {

using test_util::MakeDataset;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<const BatchSampler> MakeSampler(std::shared_ptr<const SliceDataset> dataset,
                                                BatchSamplerOptions options) {
  auto sampler = BatchSampler::Create(std::move(dataset), std::move(options));
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  return sampler.ok() ? *sampler : nullptr;
}

TEST(BatchSamplerTest, BatchShapesAndTypes) {
  auto dataset = MakeDataset({5, 20}, 16, 12);
  BatchSamplerOptions options;
  options.batch_size = 6;
  auto sampler = MakeSampler(dataset, options);
  ASSERT_TRUE(sampler);
  EXPECT_EQ(sampler->batches_per_epoch(), 5);  // ceil(25 / 6)
  absl::StatusOr<Batch> batch = sampler->MakeBatch(2, 3);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(batch->images.sizes(), ElementsAre(6, 1, 16, 12));
  EXPECT_EQ(batch->images.scalar_type(), at::kFloat);
  EXPECT_THAT(batch->labels.sizes(), ElementsAre(6, 16, 12));
  EXPECT_EQ(batch->labels.scalar_type(), at::kLong);
  EXPECT_THAT(batch->domains.sizes(), ElementsAre(6));
  EXPECT_EQ(batch->domains.scalar_type(), at::kLong);
  EXPECT_EQ(batch->positions.scalar_type(), at::kFloat);
  EXPECT_EQ(batch->indices.scalar_type(), at::kLong);
  EXPECT_EQ(batch->labeled.scalar_type(), at::kBool);
  EXPECT_EQ(batch->epoch, 2);
  EXPECT_EQ(batch->index, 3);
  // Per-slice metadata matches the dataset rows the batch came from.
  EXPECT_TRUE(at::equal(batch->domains, dataset->domains.index_select(0, batch->indices)));
  EXPECT_TRUE(at::equal(batch->positions, dataset->positions.index_select(0, batch->indices)));
}

TEST(BatchSamplerTest, WithoutAugmentationBatchesAreDatasetRows) {
  auto dataset = MakeDataset({8, 8}, 8, 8);
  BatchSamplerOptions options;
  options.batch_size = 4;
  options.augment = false;
  auto sampler = MakeSampler(dataset, options);
  absl::StatusOr<Batch> batch = sampler->MakeBatch(0, 0);
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(at::equal(batch->images.squeeze(1), dataset->images.index_select(0, batch->indices)));
  EXPECT_TRUE(
      at::equal(batch->labels, dataset->labels.index_select(0, batch->indices).to(at::kLong)));
}

TEST(BatchSamplerTest, EqualWeightsBalanceDomainsInEveryBatch) {
  // Very unequal domain sizes: 10, 40 and 200 slices.
  auto dataset = MakeDataset({10, 40, 200}, 8, 8);
  BatchSamplerOptions options;
  options.batch_size = 8;
  options.augment = false;
  auto sampler = MakeSampler(dataset, options);
  std::vector<int64_t> total(3, 0);
  const int batches = 300;
  for (int b = 0; b < batches; ++b) {
    std::vector<int64_t> count(3, 0);
    for (int64_t i : sampler->SampleIndices(0, b)) ++count[dataset->domains[i].item<int64_t>()];
    for (int d = 0; d < 3; ++d) {
      EXPECT_GE(count[d], 2) << "batch " << b;  // floor(8 / 3)
      EXPECT_LE(count[d], 3) << "batch " << b;  // ceil(8 / 3)
      total[d] += count[d];
    }
  }
  for (int d = 0; d < 3; ++d) {
    EXPECT_NEAR(static_cast<double>(total[d]) / (8.0 * batches), 1.0 / 3.0, 0.02) << d;
  }
}

TEST(BatchSamplerTest, WeightsSetDomainShares) {
  auto dataset = MakeDataset({10, 10, 10}, 8, 8);
  BatchSamplerOptions options;
  options.batch_size = 8;
  options.augment = false;
  options.domain_weights = {1.0, 0.0, 3.0};
  auto sampler = MakeSampler(dataset, options);
  for (int b = 0; b < 50; ++b) {
    std::vector<int64_t> count(3, 0);
    for (int64_t i : sampler->SampleIndices(1, b)) ++count[dataset->domains[i].item<int64_t>()];
    EXPECT_THAT(count, ElementsAre(2, 0, 6)) << "batch " << b;
  }
}

TEST(BatchSamplerTest, SlicesWithinADomainAreDrawnUniformly) {
  auto dataset = MakeDataset({20}, 4, 4);
  BatchSamplerOptions options;
  options.batch_size = 10;
  options.augment = false;
  auto sampler = MakeSampler(dataset, options);
  std::map<int64_t, int> count;
  for (int b = 0; b < 400; ++b) {
    for (int64_t i : sampler->SampleIndices(0, b)) ++count[i];
  }
  ASSERT_EQ(count.size(), 20u);
  for (const auto& [index, n] : count) {
    EXPECT_NEAR(n, 200, 60) << "slice " << index;  // 4000 draws over 20 slices
  }
}

TEST(BatchSamplerTest, ForegroundOversampling) {
  auto dataset = MakeDataset({40, 40}, 8, 8);  // every 4th slice has foreground
  BatchSamplerOptions options;
  options.batch_size = 8;
  options.augment = false;
  auto uniform = MakeSampler(dataset, options);
  options.foreground_probability = 1.0;
  auto oversampled = MakeSampler(dataset, options);
  int fg_uniform = 0;
  int fg_oversampled = 0;
  for (int b = 0; b < 50; ++b) {
    for (int64_t i : uniform->SampleIndices(0, b))
      fg_uniform += dataset->foreground[i].item<bool>();
    for (int64_t i : oversampled->SampleIndices(0, b)) {
      fg_oversampled += dataset->foreground[i].item<bool>();
    }
  }
  EXPECT_EQ(fg_oversampled, 400);
  EXPECT_NEAR(fg_uniform, 100, 40);
}

TEST(BatchSamplerTest, BatchesAreAFunctionOfSeedEpochAndIndex) {
  auto dataset = MakeDataset({30, 30}, 16, 16);
  BatchSamplerOptions options;
  options.batch_size = 4;
  options.seed = 42;
  options.augment_options.noise_probability = 1;
  auto sampler = MakeSampler(dataset, options);
  auto twin = MakeSampler(dataset, options);
  absl::StatusOr<Batch> a = sampler->MakeBatch(3, 7);
  absl::StatusOr<Batch> b = twin->MakeBatch(3, 7);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(at::equal(a->indices, b->indices));
  EXPECT_TRUE(at::equal(a->images, b->images));
  EXPECT_TRUE(at::equal(a->labels, b->labels));
  EXPECT_NE(sampler->SampleIndices(3, 7), sampler->SampleIndices(3, 8));
  EXPECT_NE(sampler->SampleIndices(3, 7), sampler->SampleIndices(4, 7));
  options.seed = 43;
  EXPECT_NE(MakeSampler(dataset, options)->SampleIndices(3, 7), sampler->SampleIndices(3, 7));
}

TEST(BatchSamplerTest, SampledIndicesAreGolden) {
  // Integer-only arithmetic on a standard engine: these indices are the same on every platform.
  // A change here changes every training run; update only on purpose.
  auto dataset = MakeDataset({10, 20}, 4, 4);
  BatchSamplerOptions options;
  options.batch_size = 6;
  options.seed = 5;
  options.foreground_probability = 0.5;
  auto sampler = MakeSampler(dataset, options);
  // Slices 0..9 are domain 0, 10..29 domain 1: three of each per batch.
  EXPECT_THAT(sampler->SampleIndices(0, 0), ElementsAre(12, 7, 4, 0, 23, 12));
  EXPECT_THAT(sampler->SampleIndices(7, 3), ElementsAre(12, 20, 8, 20, 0, 5));
}

TEST(BatchSamplerTest, RejectsBadConfigurations) {
  auto dataset = MakeDataset({10, 0}, 8, 8);  // the second joint has no slices
  BatchSamplerOptions options;
  options.domain_weights = {1.0, 1.0};
  auto sampler = BatchSampler::Create(dataset, options);
  ASSERT_FALSE(sampler.ok());
  EXPECT_EQ(sampler.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(sampler.status().message(), HasSubstr("joint 'joint1' has weight 1 but no slices"));
  // Default weights skip the empty domain.
  options.domain_weights.clear();
  EXPECT_TRUE(BatchSampler::Create(dataset, options).ok());
  options.domain_weights = {1.0};
  EXPECT_THAT(BatchSampler::Create(dataset, options).status().message(),
              HasSubstr("1 domain weights for 2 joints"));
  options.domain_weights = {0.0, 0.0};
  EXPECT_FALSE(BatchSampler::Create(dataset, options).ok());
  options = BatchSamplerOptions();
  options.batch_size = 0;
  EXPECT_FALSE(BatchSampler::Create(dataset, options).ok());
  options = BatchSamplerOptions();
  options.augment_options.noise_probability = -1;
  EXPECT_THAT(BatchSampler::Create(dataset, options).status().message(),
              HasSubstr("noise_probability"));
  EXPECT_EQ(BatchSampler::Create(MakeDataset({0}, 8, 8), BatchSamplerOptions()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace fedjoint::common::data
