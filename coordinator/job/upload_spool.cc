#include "coordinator/job/upload_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"

namespace fedjoint::coordinator {

namespace fs = std::filesystem;
namespace tensors = common::tensors;

absl::StatusOr<std::unique_ptr<UploadSpool>> UploadSpool::Create(const fs::path& dir,
                                                                 const std::string& stem,
                                                                 std::string who, int64_t limit) {
  std::unique_ptr<UploadSpool> spool(new UploadSpool(std::move(who), limit));
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::random_device random;
  spool->path_ = dir / absl::StrCat(stem, "-", random(), ".part");
  spool->fd_ = ::open(spool->path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (spool->fd_ < 0) {
    auto status = common::base::ErrnoToStatus(errno, "cannot store update", spool->path_.string());
    spool->path_.clear();
    return status;
  }
  spool->check_ = std::make_unique<UpdateStreamCheck>(spool->who_, uint64_t(limit));
  return spool;
}

UploadSpool::~UploadSpool() {
  if (fd_ >= 0) ::close(fd_);
  if (!path_.empty()) ::unlink(path_.c_str());
}

absl::Status UploadSpool::Append(int64_t offset, std::string_view bytes) {
  if (offset != received_) {
    return absl::InvalidArgumentError(
        absl::StrCat(who_, ": chunk at offset ", offset, ", expected offset ", received_));
  }
  if (received_ + int64_t(bytes.size()) > limit_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        who_, ": stream exceeds ", limit_, " bytes (declared total or the coordinator's limit)"));
  }
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return common::base::ErrnoToStatus(errno, "cannot store update", path_.string());
    p += n;
    left -= size_t(n);
  }
  sha_.Update(bytes);
  received_ += int64_t(bytes.size());
  return check_->Feed(bytes);
}

absl::StatusOr<tensors::SafetensorsFile> UploadSpool::Finish(const std::string& sha256_hex) {
  absl::StatusOr<common::base::Sha256Digest> digest = sha_.Finish();
  if (!digest.ok()) return digest.status();
  const std::string stream_hex = common::base::DigestToHex(*digest);
  if (received_ != limit_) {
    return absl::DataLossError(
        absl::StrCat(who_, ": received ", received_, " bytes, the header declared ", limit_));
  }
  if (stream_hex != sha256_hex) {
    return absl::DataLossError(
        absl::StrCat(who_, ": transfer digest mismatch (stream ", stream_hex, ", trailer ",
                     sha256_hex.empty() ? std::string("missing") : sha256_hex, ")"));
  }
  // The layout, the values and (when the layout allowed) the content digest were checked while
  // the bytes arrived; the file is only read again, by the aggregation, once accepted.
  absl::StatusOr<std::string> streamed_digest = check_->Finish();
  if (!streamed_digest.ok()) return streamed_digest.status();
  auto opened = tensors::SafetensorsFile::Open(path_, {.verify_digest = streamed_digest->empty()});
  if (!opened.ok()) return common::base::Annotate(opened.status(), who_);
  if (!streamed_digest->empty() && opened->digest() != *streamed_digest) {
    return absl::DataLossError(
        absl::StrCat(who_, ": spooled file ", path_.string(), " changed while it was received"));
  }
  return std::move(*opened);
}

}  // namespace fedjoint::coordinator
