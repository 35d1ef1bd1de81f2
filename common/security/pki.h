// The consortium's public-key infrastructure, run by the operator on the coordinator side
// (`fedjoint-coordinator pki ...`) and, for key generation only, by each site
// (`fedjoint-site pki request`). All keys are ECDSA P-256, all signatures SHA-256.
//
// Layout of the PKI folder (`pki init --out DIR`; DIR is created 0700 when it does not exist):
//
//   DIR/ca.key           consortium CA private key (0600). Only `pki sign/revoke/crl` need it:
//                        keep DIR off shared disks, back it up offline.
//   DIR/ca.crt           consortium CA certificate (self-signed, CA:TRUE, 10 years). This is the
//                        trust anchor every site receives together with its certificate.
//   DIR/server.key       coordinator TLS key (0600)
//   DIR/server.crt       coordinator TLS certificate: CN fedjoint-coordinator, serverAuth, SANs
//                        from --host/--ip (default localhost, 127.0.0.1), 2 years
//   DIR/signing.key      model-signing key (0600)
//   DIR/signing.crt      model-signing certificate: CN fedjoint-model-signing, keyUsage
//                        digitalSignature, EKU codeSigning, 10 years (so old models stay
//                        verifiable as long as the CA lives)
//   DIR/crl.pem          certificate revocation list signed by the CA (v2, crlNumber, nextUpdate
//                        one year ahead), rewritten atomically by `pki revoke` and `pki crl`
//   DIR/index.json       every certificate issued to a site (see pki_index.h)
//   DIR/issued/NAME.crt  the latest certificate issued to site NAME (what the operator sends back)
//   DIR/.lock            advisory lock serialising sign/revoke/crl
//
// A site's own folder (`pki request --site NAME --out DIR`):
//   DIR/NAME.key (0600, never leaves the site) and DIR/NAME.csr (sent to the operator).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/security/pki_index.h"

namespace fedjoint::common::security {

inline constexpr char kCoordinatorCommonName[] = "fedjoint-coordinator";
inline constexpr char kModelSigningCommonName[] = "fedjoint-model-signing";

inline constexpr int kCaLifetimeDays = 3650;
inline constexpr int kServerLifetimeDays = 730;
inline constexpr int kSigningLifetimeDays = 3650;
inline constexpr int kDefaultSiteLifetimeDays = 365;
inline constexpr int kCrlLifetimeDays = 365;

// File names inside a PKI folder (see the layout above).
struct PkiLayout {
  explicit PkiLayout(std::filesystem::path root_dir) : root(std::move(root_dir)) {}

  std::filesystem::path ca_key() const { return root / "ca.key"; }
  std::filesystem::path ca_cert() const { return root / "ca.crt"; }
  std::filesystem::path server_key() const { return root / "server.key"; }
  std::filesystem::path server_cert() const { return root / "server.crt"; }
  std::filesystem::path signing_key() const { return root / "signing.key"; }
  std::filesystem::path signing_cert() const { return root / "signing.crt"; }
  std::filesystem::path crl() const { return root / "crl.pem"; }
  std::filesystem::path index() const { return root / "index.json"; }
  std::filesystem::path issued_dir() const { return root / "issued"; }
  std::filesystem::path issued_cert(std::string_view site) const {
    return issued_dir() / (std::string(site) + ".crt");
  }
  std::filesystem::path lock() const { return root / ".lock"; }

  std::filesystem::path root;
};

struct PkiInitOptions {
  // Subject alternative names of the coordinator's TLS certificate: the names and addresses
  // sites dial. Host names: letters, digits, '-', '.', optionally a leading "*."; addresses:
  // IPv4 or IPv6 literals.
  std::vector<std::string> server_hosts = {"localhost"};
  std::vector<std::string> server_ips = {"127.0.0.1"};
  // Replace an existing CA. Every certificate issued by the old CA stops being trusted.
  bool force = false;
};

// Creates the CA, the coordinator's server certificate, the model-signing certificate, an empty
// index and an empty CRL in `dir`. FailedPrecondition when `dir` already holds a CA and
// `force` is false; InvalidArgument for a malformed host name or IP address.
absl::Status InitPki(const std::filesystem::path& dir, const PkiInitOptions& options);

struct SiteRequestFiles {
  std::filesystem::path key;  // 0600
  std::filesystem::path csr;
};

// Site side: generates NAME.key and NAME.csr (CN = site) in `out_dir` (created 0700 if needed).
// InvalidArgument for an invalid site name; AlreadyExists when the key exists and `force` is
// false (overwriting it would orphan a certificate already issued for it).
absl::StatusOr<SiteRequestFiles> CreateSiteRequest(std::string_view site,
                                                   const std::filesystem::path& out_dir,
                                                   bool force = false);

struct IssueOptions {
  int days = kDefaultSiteLifetimeDays;  // 1 .. kCaLifetimeDays, and never past the CA's expiry
  // Issue even though the site already holds a live (unrevoked, unexpired) certificate; the
  // earlier certificate stays valid until it expires or `pki revoke` is run.
  bool force = false;
};

// Operator side: verifies the CSR's self-signature and key type (EC P-256/P-384 or RSA >= 2048),
// takes the site name from its CN (validated), and issues a client certificate (CN = site, EKU
// clientAuth, keyUsage digitalSignature, SAN URI urn:fedjoint:site:NAME, random 128-bit serial)
// valid for `days`. Nothing else from the CSR is copied. Records it in index.json and writes
// issued/NAME.crt. Errors: InvalidArgument for a bad CSR or name, AlreadyExists for a live name.
absl::StatusOr<IssuedCertificate> SignSiteRequest(const std::filesystem::path& pki_dir,
                                                  const std::filesystem::path& csr_path,
                                                  const IssueOptions& options = {});

// Revokes every unrevoked certificate of `site` and rewrites the CRL (atomically). Returns the
// entries revoked now. NotFound when the site has no unrevoked certificate.
absl::StatusOr<std::vector<IssuedCertificate>> RevokeSite(const std::filesystem::path& pki_dir,
                                                          std::string_view site);

// Rewrites the CRL from the index with a fresh lastUpdate/nextUpdate (run before nextUpdate).
absl::Status RefreshCrl(const std::filesystem::path& pki_dir);

// Every certificate in the index, in issuing order.
absl::StatusOr<std::vector<IssuedCertificate>> ListCertificates(
    const std::filesystem::path& pki_dir);

}  // namespace fedjoint::common::security
