// The coordinator's view of pki/crl.pem, kept current without a restart: `pki revoke` rewrites
// the file (atomically), and the next IsRevoked() call after the check interval notices the new
// mtime/size/inode and reloads it. The gRPC layer asks on every RPC (see peer_identity.h
// AuthenticatePeer) and can also reject at the TLS handshake (tls_credentials.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/security/openssl_util.h"

namespace fedjoint::common::security {

class RevocationList {
 public:
  struct Options {
    // How often IsRevoked() may stat the CRL file. Revocation takes effect within this delay.
    std::chrono::milliseconds check_interval{1000};
  };

  // Loads `crl_path` and checks that it is signed by the CA in `ca_cert_path` (issuer name and
  // signature). Any problem is an error here: at startup the coordinator must not run with an
  // unverified revocation list.
  static absl::StatusOr<std::shared_ptr<RevocationList>> Load(
      const std::filesystem::path& crl_path, const std::filesystem::path& ca_cert_path,
      Options options);
  static absl::StatusOr<std::shared_ptr<RevocationList>> Load(
      const std::filesystem::path& crl_path, const std::filesystem::path& ca_cert_path) {
    return Load(crl_path, ca_cert_path, Options{});
  }

  RevocationList(const RevocationList&) = delete;
  RevocationList& operator=(const RevocationList&) = delete;

  // True when the certificate with this serial (hex, any case, ':' allowed) is revoked. Reloads
  // the file first when the check interval has passed and it changed. A malformed serial counts
  // as revoked (fail closed). Thread-safe.
  bool IsRevoked(std::string_view serial_hex);

  // Stats the file now and reloads it if it changed, regardless of the interval. A replacement
  // that fails to parse or verify, or whose crlNumber is lower than the current one (a rollback
  // that would un-revoke someone), is refused: the last good list stays in force, the error is
  // logged and returned. Thread-safe.
  absl::Status ReloadIfChanged();

  std::int64_t crl_number() const;
  std::size_t revoked_count() const;

 private:
  struct FileStamp {
    ino_t inode = 0;
    off_t size = -1;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  struct Parsed {
    std::set<std::string> serials;
    std::int64_t crl_number = 0;
  };

  RevocationList(std::filesystem::path crl_path, X509Ptr ca, Options options);
  static absl::StatusOr<FileStamp> Stat(const std::filesystem::path& path);
  absl::StatusOr<Parsed> ReadAndVerify() const;
  absl::Status ReloadIfChangedLocked();

  const std::filesystem::path crl_path_;
  const X509Ptr ca_;
  const Options options_;

  mutable std::mutex mutex_;
  FileStamp stamp_;  // of the last file we tried (good or not), so a bad file is reported once
  std::chrono::steady_clock::time_point last_check_;
  Parsed current_;
};

}  // namespace fedjoint::common::security
