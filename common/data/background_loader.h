// Prepares training batches on worker threads while the network trains, and hands them out in
// order.
//
// Batches are numbered by (epoch, batch) and made by a producer that is a pure function of that
// number (BatchSampler::MakeBatch), so the sequence Next() returns is the same for any number of
// workers. At most `prefetch` batches are in flight or waiting, which bounds memory. An error or
// exception in a worker is delivered by Next() in the position of the batch that failed (as an
// absl::Status), and every later Next() returns it too. The destructor stops and joins the
// workers; a consumer may stop at any time.
//
// Threading: the workers run ATen ops with one intra-op thread each (their own OpenMP setting, so
// the training thread's at::set_num_threads is untouched), so that N workers use at most N cores
// next to training instead of each spawning a full thread team.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/batch_sampler.h"

namespace fedjoint::common::data {

struct LoaderOptions {
  int num_workers = 2;
  // Batches made ahead of the consumer (in flight plus waiting); at least num_workers to keep
  // every worker busy.
  int prefetch = 4;
  int64_t batches_per_epoch = 1;  // numbering: batch b of epoch e follows batch b - 1
  int64_t start_epoch = 0;        // the first batch is (start_epoch, start_batch)
  int64_t start_batch = 0;
  int64_t num_batches = -1;  // batches to deliver; -1: no end (stop by destroying the loader)
  // Intra-op threads of each worker (1 recommended; see the header comment).
  int worker_intra_op_threads = 1;
};

struct LoaderStats {
  int64_t delivered = 0;
  double consumer_wait_seconds = 0.0;  // time Next() spent waiting for a batch not yet made
};

class BackgroundLoader {
 public:
  using Producer = std::function<absl::StatusOr<Batch>(int64_t epoch, int64_t batch)>;

  // Starts the workers. InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<BackgroundLoader>> Create(Producer producer,
                                                                  LoaderOptions options);
  // The loader for `sampler`'s batches (batches_per_epoch taken from the sampler).
  static absl::StatusOr<std::unique_ptr<BackgroundLoader>> ForSampler(
      std::shared_ptr<const BatchSampler> sampler, LoaderOptions options);

  ~BackgroundLoader();
  BackgroundLoader(const BackgroundLoader&) = delete;
  BackgroundLoader& operator=(const BackgroundLoader&) = delete;

  // The next batch in order, waiting for it if needed. OutOfRange after num_batches batches; the
  // producer's error (or Internal for an exception) for a batch that failed, and from then on.
  absl::StatusOr<Batch> Next();

  LoaderStats stats() const;

 private:
  BackgroundLoader(Producer producer, LoaderOptions options);
  void WorkerLoop();

  const Producer producer_;
  const LoaderOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // a worker may claim another batch / stop
  std::condition_variable ready_cv_;  // a batch was finished
  int64_t next_claim_ = 0;            // sequence number of the next batch to make
  int64_t next_deliver_ = 0;          // sequence number Next() returns next
  std::map<int64_t, absl::StatusOr<Batch>> finished_;
  absl::Status failure_;
  bool stopping_ = false;
  LoaderStats stats_;

  std::vector<std::thread> workers_;
};

}  // namespace fedjoint::common::data
