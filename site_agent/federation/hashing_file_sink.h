// Hashes (SHA-256) and writes a download's chunks into an atomic file on a worker thread, so the
// thread receiving the stream goes straight back to the network: decrypting and parsing the next
// chunk overlaps with hashing and writing this one. At most `max_queued` chunks wait (bounded
// memory); a full queue makes Push wait, which slows the stream down (gRPC flow control).
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/atomic_file.h"
#include "common/base/sha256.h"
#include "common/security/model_signing.h"

namespace fedjoint::site_agent {

class HashingFileSink {
 public:
  static absl::StatusOr<std::unique_ptr<HashingFileSink>> Open(const std::filesystem::path& out,
                                                               size_t max_queued = 4);
  // Stops the worker. Without Commit() nothing appears at `out`.
  ~HashingFileSink();
  HashingFileSink(const HashingFileSink&) = delete;
  HashingFileSink& operator=(const HashingFileSink&) = delete;

  // Queues `bytes` for hashing and writing. Returns the worker's first error, if any.
  absl::Status Push(std::string bytes);
  // A buffer the worker is done with (empty, its capacity kept), or an empty string: receiving the
  // next chunk into it saves allocating (and page-faulting) a fresh one.
  std::string Spare();
  // Waits until everything pushed is hashed and written; returns the SHA-256 of all of it, or the
  // first error. Call once.
  absl::StatusOr<common::base::Sha256Digest> Drain();
  // Puts the file in place (see AtomicFileWriter::Commit). After Drain().
  absl::Status Commit(common::base::AtomicFileWriter::Sync sync);

 private:
  explicit HashingFileSink(common::base::AtomicFileWriter writer, size_t max_queued);
  void Run();

  common::base::AtomicFileWriter writer_;
  const size_t max_queued_;
  common::base::Sha256Hasher sha_;  // used by the worker only
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> queue_;
  std::vector<std::string> spare_;  // at most max_queued_ + 1
  bool closing_ = false;
  bool busy_ = false;  // the worker holds a chunk outside the queue
  absl::Status error_;
  std::thread worker_;
};

}  // namespace fedjoint::site_agent
