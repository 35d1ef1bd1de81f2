#include "site_agent/federation/hashing_file_sink.h"

namespace fedjoint::site_agent {

absl::StatusOr<std::unique_ptr<HashingFileSink>> HashingFileSink::Open(
    const std::filesystem::path& out, size_t max_queued) {
  auto writer = common::base::AtomicFileWriter::Open(out);
  if (!writer.ok()) return writer.status();
  return std::unique_ptr<HashingFileSink>(
      new HashingFileSink(std::move(*writer), std::max<size_t>(1, max_queued)));
}

HashingFileSink::HashingFileSink(common::base::AtomicFileWriter writer, size_t max_queued)
    : writer_(std::move(writer)), max_queued_(max_queued) {
  worker_ = std::thread([this] { Run(); });
}

HashingFileSink::~HashingFileSink() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
    queue_.clear();
  }
  changed_.notify_all();
  worker_.join();
}

void HashingFileSink::Run() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return closing_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closing and nothing left
    std::string bytes = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    changed_.notify_all();  // room in the queue
    const bool failed = !error_.ok();
    lock.unlock();
    absl::Status status;
    if (!failed) {
      sha_.Update(bytes);
      status = writer_.Write(bytes);
    }
    lock.lock();
    busy_ = false;
    if (!status.ok() && error_.ok()) error_ = status;
    if (spare_.size() <= max_queued_) {
      bytes.clear();
      spare_.push_back(std::move(bytes));
    }
    changed_.notify_all();
  }
}

absl::Status HashingFileSink::Push(std::string bytes) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return queue_.size() < max_queued_ || !error_.ok(); });
  if (!error_.ok()) return error_;
  queue_.push_back(std::move(bytes));
  changed_.notify_all();
  return absl::OkStatus();
}

std::string HashingFileSink::Spare() {
  std::lock_guard lock(mutex_);
  if (spare_.empty()) return std::string();
  std::string out = std::move(spare_.back());
  spare_.pop_back();
  return out;
}

absl::StatusOr<common::base::Sha256Digest> HashingFileSink::Drain() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return (queue_.empty() && !busy_) || !error_.ok(); });
  if (!error_.ok()) return error_;
  return sha_.Finish();
}

absl::Status HashingFileSink::Commit(common::base::AtomicFileWriter::Sync sync) {
  return writer_.Commit(sync);
}

}  // namespace fedjoint::site_agent
