#include "common/model/cpu_tensor_cache.h"

#include <map>
#include <mutex>
#include <unordered_map>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

namespace fedjoint::common::model {
namespace {

// Smaller blocks come from malloc's bins without page faults: caching them gains nothing.
constexpr size_t kMinCachedBytes = 64 * 1024;
// A block serves requests down to half its size (e.g. the last, smaller batch of a volume).
constexpr size_t kMaxSlack = 2;
// Beyond this, freed blocks go back to the system.
constexpr size_t kMaxCachedBytes = size_t{1} << 30;

struct State {
  std::mutex mutex;
  int depth = 0;
  c10::Allocator* previous = nullptr;
  std::unordered_map<void*, size_t> live;  // blocks handed out by the cache, by their size
  std::multimap<size_t, void*> cached;     // free blocks, by size
  ScopedCpuTensorCache::Stats stats;
};

// Never destroyed: tensors may be freed during static destruction.
State& GetState() {
  static State* state = new State;
  return *state;
}

// The deleter of every block this allocator hands out, and its raw deleter (so any pointer may
// come here: ideep frees through GetAllocator()->raw_deallocate). Unknown pointers were made by
// c10::alloc_cpu like ours.
void Release(void* data) {
  if (data == nullptr) return;
  State& state = GetState();
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    auto it = state.live.find(data);
    if (it != state.live.end()) {
      const size_t size = it->second;
      state.live.erase(it);
      if (state.depth > 0 && state.stats.cached_bytes + size <= kMaxCachedBytes) {
        state.cached.emplace(size, data);
        state.stats.cached_bytes += size;
        return;
      }
    }
  }
  c10::free_cpu(data);
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) const override {
    void* data = nullptr;
    size_t size = bytes;
    if (bytes >= kMinCachedBytes) {
      State& state = GetState();
      std::lock_guard<std::mutex> lock(state.mutex);
      if (state.depth > 0) {
        ++state.stats.allocations;
        auto it = state.cached.lower_bound(bytes);
        if (it != state.cached.end() && it->first <= bytes * kMaxSlack) {
          size = it->first;
          data = it->second;
          state.cached.erase(it);
          state.stats.cached_bytes -= size;
          ++state.stats.reused;
        }
      }
    }
    if (data == nullptr) data = c10::alloc_cpu(bytes);
    if (bytes >= kMinCachedBytes) {
      State& state = GetState();
      std::lock_guard<std::mutex> lock(state.mutex);
      state.live.insert_or_assign(data, size);
    }
    return {data, data, &Release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Release; }
};

CachingCpuAllocator& Allocator() {
  static CachingCpuAllocator* allocator = new CachingCpuAllocator;  // static lifetime, as c10 needs
  return *allocator;
}

}  // namespace

ScopedCpuTensorCache::ScopedCpuTensorCache() {
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (state.depth == 0) {
    c10::Allocator* current = c10::GetCPUAllocator();
    c10::SetCPUAllocator(&Allocator());
    if (c10::GetCPUAllocator() != &Allocator()) return;  // a higher-priority allocator stays
    state.previous = current;
    // Forget the blocks of earlier caches: they are then freed, not cached, when they go. One of
    // them may have been freed meanwhile by the default allocator (a raw block allocated under
    // the last cache and released after it, as ideep does through raw_deallocate), and its
    // address reused by another block that must not be cached under the old size.
    state.live.clear();
  }
  ++state.depth;
  active_ = true;
}

ScopedCpuTensorCache::~ScopedCpuTensorCache() {
  if (!active_) return;
  std::multimap<size_t, void*> cached;
  {
    State& state = GetState();
    std::lock_guard<std::mutex> lock(state.mutex);
    if (--state.depth > 0) return;
    c10::SetCPUAllocator(state.previous);
    state.previous = nullptr;
    cached.swap(state.cached);
    state.stats.cached_bytes = 0;
  }
  for (const auto& [size, data] : cached) c10::free_cpu(data);
}

ScopedCpuTensorCache::Stats ScopedCpuTensorCache::GetStats() {
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mutex);
  return state.stats;
}

}  // namespace fedjoint::common::model
