#include "common/data/file_integrity.h"

#include <zlib.h>

#include <array>
#include <bit>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>

namespace fedjoint::common::data::internal {
namespace {

namespace fs = std::filesystem;

constexpr int32_t kNifti1HeaderSize = 348;

absl::Status Truncated(const fs::path& path, uint64_t have, uint64_t need, std::string_view unit) {
  return absl::DataLossError(
      fmt::format("{}: file is truncated ({} {}, the header needs {}); was it copied completely?",
                  path.string(), have, unit, need));
}

// Closes a gzFile on every path out.
struct GzCloser {
  void operator()(gzFile file) const {
    if (file != nullptr) gzclose(file);
  }
};

// The NIfTI-1 vox_offset (where the voxels start), or nullopt for other headers. gzread reads
// plain files transparently, so this serves .nii and .nii.gz alike.
std::optional<uint64_t> NiftiVoxelOffset(gzFile file) {
  std::array<unsigned char, kNifti1HeaderSize> header{};
  if (gzread(file, header.data(), header.size()) != static_cast<int>(header.size())) {
    return std::nullopt;
  }
  int32_t size = 0;
  std::memcpy(&size, header.data(), sizeof(size));
  const bool swapped = size != kNifti1HeaderSize;
  if (swapped &&
      static_cast<int32_t>(__builtin_bswap32(static_cast<uint32_t>(size))) != kNifti1HeaderSize)
    return std::nullopt;
  uint32_t bits = 0;
  std::memcpy(&bits, header.data() + 108, sizeof(bits));
  if (swapped) bits = __builtin_bswap32(bits);
  const auto vox_offset = std::bit_cast<float>(bits);
  // A single-file NIfTI-1 stores voxels after the 348-byte header and 4 extension bytes.
  if (!(vox_offset >= 352.0f) || vox_offset > 1e9f) return uint64_t{352};
  return static_cast<uint64_t>(vox_offset);
}

// The ISIZE field of a gzip file: its uncompressed size modulo 2^32.
std::optional<uint32_t> GzipTrailerSize(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in || in.tellg() < 18) return std::nullopt;
  in.seekg(-4, std::ios::end);
  std::array<unsigned char, 4> bytes{};
  if (!in.read(reinterpret_cast<char*>(bytes.data()), 4)) return std::nullopt;
  return uint32_t{bytes[0]} | uint32_t{bytes[1]} << 8 | uint32_t{bytes[2]} << 16 |
         uint32_t{bytes[3]} << 24;
}

}  // namespace

absl::Status CheckNiftiComplete(const fs::path& path, uint64_t data_bytes) {
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  if (file == nullptr) return absl::OkStatus();  // ITK reports unreadable files itself
  const std::optional<uint64_t> offset = NiftiVoxelOffset(file.get());
  if (!offset) return absl::OkStatus();
  const uint64_t need = *offset + data_bytes;
  const bool compressed = gzdirect(file.get()) == 0;
  if (!compressed) {
    std::error_code error;
    const uint64_t have = fs::file_size(path, error);
    if (!error && have < need) return Truncated(path, have, need, "bytes");
    return absl::OkStatus();
  }
  // A complete single-member gzip ends with its size; a truncated one ends with arbitrary data,
  // which matches by chance with probability 2^-32. On a mismatch (or a multi-member file),
  // decompress to be sure.
  if (std::optional<uint32_t> trailer = GzipTrailerSize(path);
      trailer && *trailer == static_cast<uint32_t>(need)) {
    return absl::OkStatus();
  }
  uint64_t have = kNifti1HeaderSize;
  std::vector<char> buffer(1 << 20);
  while (true) {
    const int n = gzread(file.get(), buffer.data(), static_cast<unsigned>(buffer.size()));
    if (n <= 0) break;
    have += static_cast<uint64_t>(n);
  }
  int error_number = Z_OK;
  const char* message = gzerror(file.get(), &error_number);
  if (error_number != Z_OK && error_number != Z_STREAM_END) {
    return absl::DataLossError(
        fmt::format("{}: corrupt gzip data after {} bytes: {}", path.string(), have, message));
  }
  if (have < need) return Truncated(path, have, need, "bytes when decompressed");
  return absl::OkStatus();
}

absl::Status CheckMetaImageComplete(const fs::path& path, uint64_t data_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::OkStatus();
  // Headers are a few hundred bytes of "Key = Value" lines; ElementDataFile is the last one.
  std::string head(64 * 1024, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  bool compressed = false;
  std::optional<uint64_t> compressed_size;
  size_t line_start = 0;
  while (line_start < head.size()) {
    size_t line_end = head.find('\n', line_start);
    if (line_end == std::string::npos) return absl::OkStatus();  // header longer than we look
    std::string_view line(head.data() + line_start, line_end - line_start);
    line_start = line_end + 1;
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos) continue;
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
      }
      return s;
    };
    const std::string_view key = trim(line.substr(0, equals));
    const std::string_view value = trim(line.substr(equals + 1));
    if (key == "CompressedData") {
      compressed = value == "True" || value == "true";
    } else if (key == "CompressedDataSize") {
      try {
        compressed_size = std::stoull(std::string(value));
      } catch (const std::exception&) {
        return absl::OkStatus();  // malformed: ITK decides
      }
    } else if (key == "ElementDataFile") {
      if (value != "LOCAL") return absl::OkStatus();  // data lives in another file
      const uint64_t payload = compressed ? compressed_size.value_or(0) : data_bytes;
      const uint64_t need = line_start + payload;
      std::error_code error;
      const uint64_t have = fs::file_size(path, error);
      if (!error && have < need) return Truncated(path, have, need, "bytes");
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace fedjoint::common::data::internal
