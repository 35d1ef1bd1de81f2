#include "common/base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"

namespace fedjoint::common::base {
namespace {

absl::Status FsyncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open directory to sync", dir.string());
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) return ErrnoToStatus(saved, "cannot sync directory", dir.string());
  return absl::OkStatus();
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path path, std::filesystem::path temp_path,
                                   int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Open(const std::filesystem::path& path,
                                                        mode_t mode) {
  std::random_device random;
  std::filesystem::path temp_path = path;
  temp_path += absl::StrCat(".tmp.", ::getpid(), ".", random());
  int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoToStatus(errno, "cannot create temporary file", temp_path.string());
  // open() applies the umask; make the requested mode exact (keys must be 0600, not wider).
  if (::fchmod(fd, mode) != 0) {
    int saved = errno;
    ::close(fd);
    ::unlink(temp_path.c_str());
    return ErrnoToStatus(saved, "cannot set permissions", temp_path.string());
  }
  return AtomicFileWriter(path, std::move(temp_path), fd);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(other.fd_),
      bytes_written_(other.bytes_written_) {
  other.fd_ = -1;
  other.temp_path_.clear();
}

AtomicFileWriter& AtomicFileWriter::operator=(AtomicFileWriter&& other) noexcept {
  if (this != &other) {
    Abandon();
    path_ = std::move(other.path_);
    temp_path_ = std::move(other.temp_path_);
    fd_ = other.fd_;
    bytes_written_ = other.bytes_written_;
    other.fd_ = -1;
    other.temp_path_.clear();
  }
  return *this;
}

AtomicFileWriter::~AtomicFileWriter() { Abandon(); }

void AtomicFileWriter::Abandon() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

absl::Status AtomicFileWriter::Write(std::span<const std::byte> data) {
  if (fd_ < 0)
    return absl::FailedPreconditionError(absl::StrCat(path_.string(), ": writer closed"));
  const std::byte* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "write failed", temp_path_.string());
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  bytes_written_ += data.size();
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Write(std::string_view data) {
  return Write(std::as_bytes(std::span<const char>(data.data(), data.size())));
}

absl::Status AtomicFileWriter::Commit(Sync sync) {
  if (fd_ < 0)
    return absl::FailedPreconditionError(absl::StrCat(path_.string(), ": writer closed"));
  if (sync == Sync::kFull && ::fsync(fd_) != 0) {
    return ErrnoToStatus(errno, "fsync failed", temp_path_.string());
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    return ErrnoToStatus(errno, "close failed", temp_path_.string());
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return ErrnoToStatus(errno, "cannot rename temporary file into place", path_.string());
  }
  temp_path_.clear();
  return sync == Sync::kFull ? FsyncDirectory(path_.parent_path()) : absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                                 mode_t mode) {
  auto writer = AtomicFileWriter::Open(path, mode);
  if (!writer.ok()) return writer.status();
  if (auto s = writer->Write(contents); !s.ok()) return s;
  return writer->Commit();
}

absl::Status CommitTemporaryFile(const std::filesystem::path& temp_path,
                                 const std::filesystem::path& path) {
  int fd = ::open(temp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    absl::Status status = ErrnoToStatus(errno, "cannot open temporary file", temp_path.string());
    ::unlink(temp_path.c_str());
    return status;
  }
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) {
    ::unlink(temp_path.c_str());
    return ErrnoToStatus(saved, "fsync failed", temp_path.string());
  }
  if (::rename(temp_path.c_str(), path.c_str()) != 0) {
    saved = errno;
    ::unlink(temp_path.c_str());
    return ErrnoToStatus(saved, "cannot rename temporary file into place", path.string());
  }
  return FsyncDirectory(path.parent_path());
}

absl::StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path,
                                          std::size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open", path.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    return ErrnoToStatus(saved, "cannot stat", path.string());
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": is a directory, expected a file"));
  }
  if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return absl::ResourceExhaustedError(absl::StrCat(path.string(), ": file is ", st.st_size,
                                                     " bytes, more than the limit of ", max_bytes));
  }
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      ::close(fd);
      if (n == 0)
        return absl::DataLossError(absl::StrCat(path.string(), ": file shrank while reading"));
      return ErrnoToStatus(saved, "read failed", path.string());
    }
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return out;
}

}  // namespace fedjoint::common::base
