// The issuing bookkeeping of the consortium CA: `pki/index.json`, one entry per certificate
// issued to a site, kept forever (revoked and expired entries too) so the CRL can be rebuilt
// from it at any time.
//
//   {
//     "format": "fedjoint-pki-index", "version": 1,
//     "crl_number": 3,                       // number of the last CRL written
//     "certificates": [
//       {"name": "site-a", "serial": "5F3A...", "not_before": "2025-01-01T00:00:00Z",
//        "not_after": "2026-01-01T00:00:00Z", "revoked_at": null, "file": "issued/site-a.crt"}
//     ]
//   }
#pragma once

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedjoint::common::security {

struct IssuedCertificate {
  std::string name;        // site name (= the certificate's CN)
  std::string serial;      // upper-case hex, no leading zeros (see NormalizeSerialHex)
  std::string not_before;  // ISO 8601 UTC
  std::string not_after;   // ISO 8601 UTC
  std::string revoked_at;  // ISO 8601 UTC, empty while not revoked
  std::string file;        // path of the PEM certificate relative to the PKI folder

  bool revoked() const { return !revoked_at.empty(); }
  // Neither revoked nor expired at `now`.
  bool Live(std::time_t now) const;
};

struct PkiIndex {
  std::int64_t crl_number = 0;
  std::vector<IssuedCertificate> certificates;
};

// A missing file is NotFound; a malformed one is DataLoss naming the file and the field.
absl::StatusOr<PkiIndex> ReadPkiIndex(const std::filesystem::path& path);
// Written atomically.
absl::Status WritePkiIndex(const std::filesystem::path& path, const PkiIndex& index);

}  // namespace fedjoint::common::security
