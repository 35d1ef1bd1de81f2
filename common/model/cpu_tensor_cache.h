// A scoped cache of CPU tensor memory for inference loops.
//
// LibTorch allocates every CPU tensor with malloc and frees it when the last reference goes. A
// network's activations are megabytes each, so glibc serves them with mmap (or trims its heap
// after them) and every forward pass page-faults its activations in again from fresh, zeroed
// pages: in `fedjoint_model_bench` about 0.55 M page faults for 700 slices and ~30 % of the
// inference CPU time in the kernel (docs/performance.md). The same tensor sizes come back on every
// batch, so keeping freed blocks for reuse removes nearly all of it.
//
// While a ScopedCpuTensorCache lives, the CPU allocator keeps freed blocks of at least 64 KiB
// (any thread's) and hands them out again for requests of the same size or up to twice smaller.
// When the last live one ends, the default allocator is back and the cached blocks are freed;
// blocks still held by tensors are freed normally when those tensors go. Memory therefore stays
// near the loop's peak while the cache lives instead of returning to the system between batches.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fedjoint::common::model {

class ScopedCpuTensorCache {
 public:
  ScopedCpuTensorCache();
  ~ScopedCpuTensorCache();
  ScopedCpuTensorCache(const ScopedCpuTensorCache&) = delete;
  ScopedCpuTensorCache& operator=(const ScopedCpuTensorCache&) = delete;

  // False when another allocator with a higher priority is installed (the cache then does
  // nothing).
  bool active() const { return active_; }

  struct Stats {
    int64_t allocations = 0;  // requests of at least the cached size while a cache was live
    int64_t reused = 0;       // of which served from the cache
    size_t cached_bytes = 0;  // held in the cache now
  };
  // Counts since the process started (for benchmarks and tests).
  static Stats GetStats();

 private:
  bool active_ = false;
};

}  // namespace fedjoint::common::model
