#include "common/data/background_loader.h"

#include <chrono>
#include <exception>
#include <utility>

#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#if AT_PARALLEL_OPENMP
#include <omp.h>
#endif

namespace fedjoint::common::data {
namespace {

// Gives the calling (worker) thread its own intra-op thread count. at::set_num_threads would
// change the process-wide setting the training thread relies on; the OpenMP count is per thread.
void LimitIntraOpThreads(int threads) {
  // First let ATen initialize this thread (it would later reset the OpenMP count to the global
  // setting on its first parallel call), then override the thread's own count.
  at::internal::lazy_init_num_threads();
#if AT_PARALLEL_OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

}  // namespace

absl::StatusOr<std::unique_ptr<BackgroundLoader>> BackgroundLoader::Create(Producer producer,
                                                                           LoaderOptions options) {
  if (!producer) return absl::InvalidArgumentError("background loader: no batch producer");
  if (options.num_workers < 1 || options.num_workers > 64) {
    return absl::InvalidArgumentError(
        fmt::format("background loader: num_workers {} must be in [1, 64]", options.num_workers));
  }
  if (options.prefetch < 1) {
    return absl::InvalidArgumentError(
        fmt::format("background loader: prefetch {} must be >= 1", options.prefetch));
  }
  if (options.batches_per_epoch < 1) {
    return absl::InvalidArgumentError(fmt::format(
        "background loader: batches_per_epoch {} must be >= 1", options.batches_per_epoch));
  }
  if (options.start_epoch < 0 || options.start_batch < 0 ||
      options.start_batch >= options.batches_per_epoch) {
    return absl::InvalidArgumentError(fmt::format(
        "background loader: start (epoch {}, batch {}) is not a batch of an epoch of {}",
        options.start_epoch, options.start_batch, options.batches_per_epoch));
  }
  if (options.num_batches < -1) {
    return absl::InvalidArgumentError(fmt::format(
        "background loader: num_batches {} must be >= 0, or -1 for no end", options.num_batches));
  }
  if (options.worker_intra_op_threads < 0) {
    return absl::InvalidArgumentError(
        fmt::format("background loader: worker_intra_op_threads {} must be >= 0 (0: leave as is)",
                    options.worker_intra_op_threads));
  }
  return std::unique_ptr<BackgroundLoader>(new BackgroundLoader(std::move(producer), options));
}

absl::StatusOr<std::unique_ptr<BackgroundLoader>> BackgroundLoader::ForSampler(
    std::shared_ptr<const BatchSampler> sampler, LoaderOptions options) {
  if (!sampler) return absl::InvalidArgumentError("background loader: no batch sampler");
  options.batches_per_epoch = sampler->batches_per_epoch();
  return Create(
      [sampler](int64_t epoch, int64_t batch) { return sampler->MakeBatch(epoch, batch); },
      options);
}

BackgroundLoader::BackgroundLoader(Producer producer, LoaderOptions options)
    : producer_(std::move(producer)), options_(options) {
  workers_.reserve(options_.num_workers);
  for (int w = 0; w < options_.num_workers; ++w) workers_.emplace_back([this] { WorkerLoop(); });
}

BackgroundLoader::~BackgroundLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  // A worker in the middle of a batch finishes it (bounded work) and then sees stopping_.
  for (std::thread& worker : workers_) worker.join();
}

void BackgroundLoader::WorkerLoop() {
  LimitIntraOpThreads(options_.worker_intra_op_threads);
  at::NoGradGuard no_grad;  // grad mode is thread-local: set it in this thread
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] {
      const bool more = options_.num_batches < 0 || next_claim_ < options_.num_batches;
      return stopping_ || !more || next_claim_ < next_deliver_ + options_.prefetch;
    });
    if (stopping_) return;
    if (options_.num_batches >= 0 && next_claim_ >= options_.num_batches) return;
    const int64_t sequence = next_claim_++;
    lock.unlock();

    const int64_t position = options_.start_batch + sequence;
    const int64_t epoch = options_.start_epoch + position / options_.batches_per_epoch;
    const int64_t batch = position % options_.batches_per_epoch;
    absl::StatusOr<Batch> result = absl::InternalError("unset");
    try {
      result = producer_(epoch, batch);
    } catch (const std::exception& e) {
      result = absl::InternalError(fmt::format(
          "background loader: epoch {} batch {}: exception: {}", epoch, batch, e.what()));
    } catch (...) {
      result = absl::InternalError(
          fmt::format("background loader: epoch {} batch {}: unknown exception", epoch, batch));
    }

    lock.lock();
    finished_.emplace(sequence, std::move(result));
    ready_cv_.notify_all();
  }
}

absl::StatusOr<Batch> BackgroundLoader::Next() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!failure_.ok()) return failure_;
  if (options_.num_batches >= 0 && next_deliver_ >= options_.num_batches) {
    return absl::OutOfRangeError(
        fmt::format("background loader: all {} batches were delivered", options_.num_batches));
  }
  auto it = finished_.find(next_deliver_);
  if (it == finished_.end()) {
    const auto start = std::chrono::steady_clock::now();
    ready_cv_.wait(lock, [&] {
      it = finished_.find(next_deliver_);
      return it != finished_.end();
    });
    stats_.consumer_wait_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  absl::StatusOr<Batch> result = std::move(it->second);
  finished_.erase(it);
  ++next_deliver_;
  if (!result.ok()) {
    // Sticky: later batches would be out of order relative to the failed one. Stop the workers.
    failure_ = result.status();
    stopping_ = true;
  } else {
    ++stats_.delivered;
  }
  lock.unlock();
  work_cv_.notify_all();
  return result;
}

LoaderStats BackgroundLoader::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace fedjoint::common::data
