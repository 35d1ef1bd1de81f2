#include "common/model/cpu_tensor_cache.h"

#include <thread>
#include <vector>

#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include "common/model/folded_unet.h"
#include "common/model/unet.h"

namespace fedjoint::common::model {
namespace {

constexpr int64_t kFloats = 256 * 1024;  // 1 MiB

TEST(CpuTensorCacheTest, ReusesFreedBlocksWhileItLivesAndRestoresTheAllocator) {
  c10::Allocator* before = c10::GetCPUAllocator();
  {
    ScopedCpuTensorCache cache;
    ASSERT_TRUE(cache.active());
    EXPECT_NE(c10::GetCPUAllocator(), before);
    { at::Tensor t = torch::ones({kFloats}); }
    const auto start = ScopedCpuTensorCache::GetStats();
    EXPECT_GE(start.cached_bytes, kFloats * sizeof(float));
    at::Tensor same = torch::zeros({kFloats});       // same size: from the cache
    at::Tensor small = torch::zeros({kFloats / 4});  // 4x smaller: not that block
    const auto after = ScopedCpuTensorCache::GetStats();
    EXPECT_EQ(after.allocations - start.allocations, 2);
    EXPECT_EQ(after.reused - start.reused, 1);
    EXPECT_EQ(same.sum().item<float>(), 0.0f);
    same.fill_(2.0f);
    small.fill_(3.0f);
    EXPECT_EQ(same.sum().item<float>(), 2.0f * kFloats);
  }
  EXPECT_EQ(c10::GetCPUAllocator(), before);
  EXPECT_EQ(ScopedCpuTensorCache::GetStats().cached_bytes, 0u);
}

TEST(CpuTensorCacheTest, TensorsOutliveTheCacheAndNestedCachesShareIt) {
  c10::Allocator* before = c10::GetCPUAllocator();
  at::Tensor kept;
  void* raw = nullptr;
  {
    ScopedCpuTensorCache outer;
    {
      ScopedCpuTensorCache inner;
      kept = torch::full({kFloats}, 5.0f);
    }
    EXPECT_NE(c10::GetCPUAllocator(), before);  // the outer one still lives
    // ideep's path: raw blocks allocated under the cache, freed after it by the default one.
    raw = c10::GetCPUAllocator()->raw_allocate(kFloats * sizeof(float));
  }
  EXPECT_EQ(c10::GetCPUAllocator(), before);
  c10::GetCPUAllocator()->raw_deallocate(raw);
  EXPECT_EQ(kept.sum().item<float>(), 5.0f * kFloats);
  {
    ScopedCpuTensorCache again;
    for (int i = 0; i < 4; ++i) {
      void* p = c10::GetCPUAllocator()->raw_allocate(kFloats * sizeof(float));
      c10::GetCPUAllocator()->raw_deallocate(p);
    }
    kept = at::Tensor();  // a block of the first cache, freed under the second
    at::Tensor t = torch::ones({kFloats});
    EXPECT_EQ(t.sum().item<float>(), static_cast<float>(kFloats));
  }
}

TEST(CpuTensorCacheTest, ThreadsAllocateConcurrently) {
  ScopedCpuTensorCache cache;
  std::vector<std::thread> threads;
  std::vector<double> sums(4, 0.0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &sums] {
      for (int i = 0; i < 50; ++i) {
        at::Tensor a = torch::full({kFloats / 2 + 1024 * (i % 3)}, static_cast<float>(t));
        sums[t] += a.sum().item<double>();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) {
    double expected = 0;
    for (int i = 0; i < 50; ++i) expected += t * static_cast<double>(kFloats / 2 + 1024 * (i % 3));
    EXPECT_EQ(sums[t], expected) << "thread " << t;
  }
}

TEST(CpuTensorCacheTest, NetworkOutputIsUnchanged) {
  torch::manual_seed(1);
  UNet model(UNetOptions().width_multiplier(0.25));
  auto folded = FoldBatchNorm(*model, 1, FoldOptions{.channels_last = true});
  ASSERT_TRUE(folded.ok());
  c10::InferenceMode inference;
  at::Tensor x = torch::randn({4, 1, 64, 64});
  at::Tensor expected = folded->forward(x).contiguous();
  ScopedCpuTensorCache cache;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(torch::equal(folded->forward(x).contiguous(), expected)) << "pass " << i;
  }
  EXPECT_GT(ScopedCpuTensorCache::GetStats().reused, 0);
}

}  // namespace
}  // namespace fedjoint::common::model
