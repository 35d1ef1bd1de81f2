// SHA-256, the one implementation every file, transfer and content digest of fedjoint goes
// through: a streaming hasher, whole-file and in-memory helpers, and lowercase hex.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fedjoint::common::base {

using Sha256Digest = std::array<std::uint8_t, 32>;

// Bytes in, digest out; for bytes that arrive in pieces (a stream, a file being written).
// Movable, not copyable. Finish() ends it; Update after Finish is ignored.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(const void* data, std::size_t size);
  void Update(std::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // Internal error only when OpenSSL fails (out of memory).
  absl::StatusOr<Sha256Digest> Finish();

 private:
  void* ctx_ = nullptr;  // EVP_MD_CTX*, kept out of this header
  bool ok_ = false;
};

// Streams the file through SHA-256 (1 MiB at a time).
absl::StatusOr<Sha256Digest> Sha256File(const std::filesystem::path& path);
Sha256Digest Sha256Bytes(std::string_view data);

// Lowercase hex, two characters per byte.
std::string ToHex(std::span<const std::uint8_t> bytes);
inline std::string DigestToHex(const Sha256Digest& digest) { return ToHex(digest); }

}  // namespace fedjoint::common::base
