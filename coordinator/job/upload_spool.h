// An update's bytes on their way in: written to a spool file (never held in memory), hashed as they
// arrive (the transfer digest the client's trailer must match), checked while they go by
// (UpdateStreamCheck: layout, float32, finite values, content digest) and bounded by a byte limit.
// Knows nothing of rounds or sites beyond the name its messages start with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/sha256.h"
#include "common/tensors/safetensors_file.h"
#include "coordinator/job/update_stream.h"

namespace fedjoint::coordinator {

class UploadSpool {
 public:
  // A new spool file `dir`/`stem`-<random>.part (created exclusively, mode 0600). `who` starts
  // every message ("update from site 'a'"); `limit` bounds the bytes (the declared total).
  static absl::StatusOr<std::unique_ptr<UploadSpool>> Create(const std::filesystem::path& dir,
                                                             const std::string& stem,
                                                             std::string who, int64_t limit);
  // Closes and removes the spool file (a mapping made by Finish keeps its data readable).
  ~UploadSpool();
  UploadSpool(const UploadSpool&) = delete;
  UploadSpool& operator=(const UploadSpool&) = delete;

  // The next chunk; `offset` must be where the previous one ended.
  absl::Status Append(int64_t offset, std::string_view bytes);

  // After the last chunk: checks the byte count against the limit (the declared total) and the
  // transfer digest against `sha256_hex`, finishes the stream check, and maps the file. Its
  // content digest was computed as the bytes arrived; the file is hashed again only when its
  // layout did not allow that.
  absl::StatusOr<common::tensors::SafetensorsFile> Finish(const std::string& sha256_hex);

  int64_t received() const { return received_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  UploadSpool(std::string who, int64_t limit) : who_(std::move(who)), limit_(limit) {}

  std::string who_;
  int64_t limit_ = 0;
  std::filesystem::path path_;
  int fd_ = -1;
  int64_t received_ = 0;
  common::base::Sha256Hasher sha_;
  std::unique_ptr<UpdateStreamCheck> check_;
};

}  // namespace fedjoint::coordinator
