// Crash-safe file writes: data goes to a temporary file in the destination's directory, is
// fsync'ed, renamed over the destination, and the directory is fsync'ed. A reader (or a process
// restarted after a kill) sees either the old file or the complete new one, never a torn write.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedjoint::common::base {

// Streams a file into place atomically. Nothing is visible at `path` until Commit() succeeds;
// destroying the writer without Commit() removes the temporary file.
class AtomicFileWriter {
 public:
  // Opens a temporary file next to `path` with permission bits `mode` (e.g. 0600 for keys).
  static absl::StatusOr<AtomicFileWriter> Open(const std::filesystem::path& path,
                                               mode_t mode = 0644);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  absl::Status Write(std::span<const std::byte> data);
  absl::Status Write(std::string_view data);
  // kFull: fsync, rename over the destination, fsync the directory. kSkip leaves out both fsyncs:
  // for caches whose content is verified on every use (a file torn or lost by a power cut is
  // detected and fetched again), where waiting for the disk would only cost time. The rename
  // still shows other processes the complete file or none.
  enum class Sync { kFull, kSkip };
  absl::Status Commit(Sync sync = Sync::kFull);

  const std::filesystem::path& path() const { return path_; }
  std::size_t bytes_written() const { return bytes_written_; }

 private:
  AtomicFileWriter(std::filesystem::path path, std::filesystem::path temp_path, int fd);
  void Abandon();

  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  int fd_ = -1;
  std::size_t bytes_written_ = 0;
};

// Writes `contents` to `path` atomically (see AtomicFileWriter).
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                                 mode_t mode = 0644);

// For files written by a library that only takes a file name (ITK writers): `temp_path` is a
// complete file in the same directory as `path`. fsyncs it, renames it over `path`, and fsyncs the
// directory. On failure `temp_path` is removed, so no temporary is left behind.
absl::Status CommitTemporaryFile(const std::filesystem::path& temp_path,
                                 const std::filesystem::path& path);

// Reads a whole (small) file; fails with a message naming the file when it is larger than
// `max_bytes`, so a hostile or corrupt file cannot exhaust memory.
absl::StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path,
                                          std::size_t max_bytes = 64u << 20);

}  // namespace fedjoint::common::base
