#include "common/base/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"

namespace fedjoint::common::base {

Sha256Hasher::Sha256Hasher() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ctx_ = ctx;
  ok_ = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), ok_(std::exchange(other.ok_, false)) {}

Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    ctx_ = std::exchange(other.ctx_, nullptr);
    ok_ = std::exchange(other.ok_, false);
  }
  return *this;
}

void Sha256Hasher::Update(const void* data, std::size_t size) {
  if (ok_ && size > 0) ok_ = EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, size) == 1;
}

absl::StatusOr<Sha256Digest> Sha256Hasher::Finish() {
  Sha256Digest digest{};
  unsigned int length = 0;
  const bool ok = ok_ &&
                  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest.data(), &length) == 1 &&
                  length == digest.size();
  ok_ = false;
  if (!ok) return absl::InternalError("OpenSSL SHA-256 failed");
  return digest;
}

absl::StatusOr<Sha256Digest> Sha256File(const std::filesystem::path& path) {
  constexpr std::size_t kChunkBytes = 1u << 20;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat(path.string(), ": file not found"));
    return ErrnoToStatus(errno, "cannot open", path.string());
  }
  Sha256Hasher hasher;
  std::vector<unsigned char> buffer(kChunkBytes);
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      return ErrnoToStatus(saved, "read failed", path.string());
    }
    if (n == 0) break;
    hasher.Update(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return hasher.Finish();
}

Sha256Digest Sha256Bytes(std::string_view data) {
  Sha256Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

std::string ToHex(std::span<const std::uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * bytes.size(), '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    hex[2 * i] = kHex[bytes[i] >> 4];
    hex[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return hex;
}

}  // namespace fedjoint::common::base
