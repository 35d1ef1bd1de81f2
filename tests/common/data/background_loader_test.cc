#include "common/data/background_loader.h"

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/data/sampler_test_data.h"

namespace fedjoint::common::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A producer whose batch records its own number in `indices`.
Batch Numbered(int64_t epoch, int64_t batch) {
  Batch b;
  b.epoch = epoch;
  b.index = batch;
  b.indices = at::tensor({epoch, batch}, at::kLong);
  return b;
}

std::shared_ptr<const BatchSampler> AugmentingSampler() {
  BatchSamplerOptions options;
  options.batch_size = 4;
  options.seed = 9;
  options.augment_options.elastic_probability = 0.5;
  options.augment_options.noise_probability = 0.5;
  auto sampler = BatchSampler::Create(test_util::MakeDataset({12, 30}, 32, 32), options);
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  return *sampler;
}

std::vector<Batch> Take(BackgroundLoader& loader, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Batch> batch = loader.Next();
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) break;
    out.push_back(std::move(*batch));
  }
  return out;
}

TEST(BackgroundLoaderTest, SameBatchesWithOneOrTwoWorkers) {
  auto sampler = AugmentingSampler();
  LoaderOptions options;
  options.num_workers = 1;
  options.prefetch = 2;
  auto one = BackgroundLoader::ForSampler(sampler, options);
  options.num_workers = 2;
  options.prefetch = 5;
  auto two = BackgroundLoader::ForSampler(sampler, options);
  ASSERT_TRUE(one.ok() && two.ok());
  const int n = static_cast<int>(sampler->batches_per_epoch()) + 3;  // crosses an epoch
  std::vector<Batch> a = Take(**one, n);
  std::vector<Batch> b = Take(**two, n);
  ASSERT_EQ(a.size(), static_cast<size_t>(n));
  ASSERT_EQ(b.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(a[i].epoch, i / sampler->batches_per_epoch());
    EXPECT_EQ(a[i].index, i % sampler->batches_per_epoch());
    EXPECT_EQ(b[i].epoch, a[i].epoch);
    EXPECT_EQ(b[i].index, a[i].index);
    EXPECT_TRUE(at::equal(a[i].indices, b[i].indices)) << i;
    EXPECT_TRUE(at::equal(a[i].images, b[i].images)) << i;
    EXPECT_TRUE(at::equal(a[i].labels, b[i].labels)) << i;
    // And the same as making the batch directly.
    absl::StatusOr<Batch> direct = sampler->MakeBatch(a[i].epoch, a[i].index);
    ASSERT_TRUE(direct.ok());
    EXPECT_TRUE(at::equal(a[i].images, direct->images)) << i;
  }
}

TEST(BackgroundLoaderTest, DeliversInOrderFromTheStartPositionAndStops) {
  LoaderOptions options;
  options.num_workers = 3;
  options.prefetch = 4;
  options.batches_per_epoch = 5;
  options.start_epoch = 2;
  options.start_batch = 3;
  options.num_batches = 6;
  auto loader = BackgroundLoader::Create(
      [](int64_t epoch, int64_t batch) -> absl::StatusOr<Batch> {
        // Finish out of order: later batches are often faster.
        std::this_thread::sleep_for(std::chrono::milliseconds(5 * ((batch + 1) % 3)));
        return Numbered(epoch, batch);
      },
      options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  const std::vector<std::pair<int64_t, int64_t>> expected = {{2, 3}, {2, 4}, {3, 0},
                                                             {3, 1}, {3, 2}, {3, 3}};
  for (const auto& [epoch, batch] : expected) {
    absl::StatusOr<Batch> next = (*loader)->Next();
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->epoch, epoch);
    EXPECT_EQ(next->index, batch);
    EXPECT_TRUE(at::equal(next->indices, at::tensor({epoch, batch}, at::kLong)));
  }
  absl::StatusOr<Batch> end = (*loader)->Next();
  EXPECT_EQ(end.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ((*loader)->stats().delivered, 6);
}

TEST(BackgroundLoaderTest, PrefetchBoundsTheWorkAhead) {
  std::atomic<int> made{0};
  LoaderOptions options;
  options.num_workers = 2;
  options.prefetch = 3;
  auto loader = BackgroundLoader::Create(
      [&made](int64_t epoch, int64_t batch) -> absl::StatusOr<Batch> {
        ++made;
        return Numbered(epoch, batch);
      },
      options);
  ASSERT_TRUE(loader.ok());
  // Wait (with a generous deadline, machines may be busy) until the workers stop by themselves.
  auto settle = [&made](int expected) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (made.load() < expected && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(50ms);  // room to overshoot, if the bound did not hold
    return made.load();
  };
  EXPECT_EQ(settle(3), 3);
  ASSERT_TRUE((*loader)->Next().ok());
  EXPECT_EQ(settle(4), 4);
}

TEST(BackgroundLoaderTest, ConsumerMayStopEarlyWithoutDeadlock) {
  // Slow producer, full queue, workers mid-batch: destruction must still return promptly.
  auto destroy_async = [](std::unique_ptr<BackgroundLoader> loader) {
    return std::async(std::launch::async, [l = std::move(loader)]() mutable { l.reset(); });
  };
  LoaderOptions options;
  options.num_workers = 2;
  options.prefetch = 2;
  auto producer = [](int64_t epoch, int64_t batch) -> absl::StatusOr<Batch> {
    std::this_thread::sleep_for(20ms);
    return Numbered(epoch, batch);
  };
  auto untouched = BackgroundLoader::Create(producer, options);
  ASSERT_TRUE(untouched.ok());
  auto used = BackgroundLoader::Create(producer, options);
  ASSERT_TRUE(used.ok());
  ASSERT_TRUE((*used)->Next().ok());
  std::this_thread::sleep_for(30ms);  // let the queue fill up
  auto a = destroy_async(std::move(*untouched));
  auto b = destroy_async(std::move(*used));
  EXPECT_EQ(a.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(b.wait_for(5s), std::future_status::ready);
}

TEST(BackgroundLoaderTest, ExceptionInAWorkerSurfacesAsStatusInOrder) {
  LoaderOptions options;
  options.num_workers = 2;
  options.prefetch = 4;
  options.batches_per_epoch = 100;
  auto loader = BackgroundLoader::Create(
      [](int64_t epoch, int64_t batch) -> absl::StatusOr<Batch> {
        if (batch == 3) throw std::runtime_error("disk on fire");
        return Numbered(epoch, batch);
      },
      options);
  ASSERT_TRUE(loader.ok());
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Batch> next = (*loader)->Next();
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->index, i);
  }
  absl::StatusOr<Batch> failed = (*loader)->Next();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(failed.status().message(),
              AllOf(HasSubstr("epoch 0 batch 3"), HasSubstr("disk on fire")));
  // Sticky: the stream does not skip over the failed batch.
  EXPECT_EQ((*loader)->Next().status(), failed.status());
}

TEST(BackgroundLoaderTest, ProducerErrorKeepsItsCode) {
  LoaderOptions options;
  options.num_workers = 2;
  auto loader = BackgroundLoader::Create(
      [](int64_t epoch, int64_t batch) -> absl::StatusOr<Batch> {
        if (batch == 0) return absl::DataLossError("slice 17 is corrupt");
        return Numbered(epoch, batch);
      },
      options);
  ASSERT_TRUE(loader.ok());
  absl::StatusOr<Batch> failed = (*loader)->Next();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(failed.status().message(), HasSubstr("slice 17 is corrupt"));
}

TEST(BackgroundLoaderTest, WorkersUseOneIntraOpThreadWithoutTouchingTheGlobalSetting) {
  const int original = at::get_num_threads();
  at::set_num_threads(2);  // what training sets
  std::atomic<int> seen{-1};
  LoaderOptions options;
  options.num_workers = 1;
  options.num_batches = 1;
  auto loader = BackgroundLoader::Create(
      [&seen](int64_t epoch, int64_t batch) -> absl::StatusOr<Batch> {
        seen = at::get_num_threads();
        return Numbered(epoch, batch);
      },
      options);
  ASSERT_TRUE(loader.ok());
  ASSERT_TRUE((*loader)->Next().ok());
  EXPECT_EQ(seen.load(), 1);
  EXPECT_EQ(at::get_num_threads(), 2);
  at::set_num_threads(original);
}

TEST(BackgroundLoaderTest, RejectsBadOptions) {
  auto producer = [](int64_t epoch, int64_t batch) -> absl::StatusOr<Batch> {
    return Numbered(epoch, batch);
  };
  LoaderOptions options;
  options.num_workers = 0;
  EXPECT_THAT(BackgroundLoader::Create(producer, options).status().message(),
              HasSubstr("num_workers 0"));
  options = LoaderOptions();
  options.prefetch = 0;
  EXPECT_FALSE(BackgroundLoader::Create(producer, options).ok());
  options = LoaderOptions();
  options.batches_per_epoch = 4;
  options.start_batch = 4;
  EXPECT_FALSE(BackgroundLoader::Create(producer, options).ok());
  EXPECT_FALSE(BackgroundLoader::Create(nullptr, LoaderOptions()).ok());
}

}  // namespace
}  // namespace fedjoint::common::data
