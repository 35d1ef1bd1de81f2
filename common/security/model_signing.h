// Signing published global models so a site can tell they come from its consortium's
// coordinator, unmodified.
//
// The coordinator signs with pki/signing.key (ECDSA P-256); the signature is an ordinary
// ECDSA-with-SHA256 signature over the file's bytes (equivalently over their SHA-256 digest), so
// `openssl dgst -sha256 -verify signing.pub -signature <DER> FILE` checks it too.
//
// Signature file (`FILE.sig`, JSON, at most 64 KiB):
//   {
//     "format": "fedjoint-signature", "version": 1,
//     "algorithm": "ecdsa-p256-sha256",
//     "sha256": "<hex SHA-256 of the signed bytes>",
//     "signature": "<base64 DER ECDSA signature>",
//     "certificate": "<PEM of the model-signing certificate>",
//     "signed_at": "2025-01-31T12:00:00Z"            (informational, not covered)
//   }
// The signing certificate travels inside the .sig, so a verifier needs only the consortium CA
// certificate it already holds (pki/ca.crt).
//
// Verification errors:
//   DataLoss         the file's SHA-256 differs from the one signed (corrupt or modified file),
//                    or the .sig itself is malformed;
//   Unauthenticated  the signature does not verify, or the certificate is not a model-signing
//                    certificate ("signing certificate is not issued by the consortium CA" when
//                    it chains to another CA, "... is not a model-signing certificate" for a
//                    site or server certificate of this CA, expired certificates likewise).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/sha256.h"
#include "common/security/openssl_util.h"

namespace fedjoint::common::security {

using base::Sha256Digest;

// FILE -> FILE.sig
std::filesystem::path SignaturePathFor(const std::filesystem::path& file);

// Holds the model-signing key (loaded once, e.g. by the coordinator at startup).
class ModelSigner {
 public:
  // Loads pki/signing.key and pki/signing.crt; fails if the key does not match the certificate
  // or the certificate is not a model-signing certificate.
  static absl::StatusOr<ModelSigner> Load(const std::filesystem::path& key_path,
                                          const std::filesystem::path& cert_path);

  // The contents of a .sig file for data whose SHA-256 is `digest`.
  absl::StatusOr<std::string> SignDigest(const Sha256Digest& digest) const;
  // Hashes `file` (streaming) and writes the signature atomically to `sig_path`
  // (default SignaturePathFor(file)).
  absl::Status SignFile(const std::filesystem::path& file,
                        const std::filesystem::path& sig_path = {}) const;

 private:
  ModelSigner(EvpPkeyPtr key, std::string cert_pem)
      : key_(std::move(key)), cert_pem_(std::move(cert_pem)) {}

  EvpPkeyPtr key_;
  std::string cert_pem_;
};

// Holds the consortium CA (loaded once, e.g. by a site at startup).
class SignatureVerifier {
 public:
  static absl::StatusOr<SignatureVerifier> Load(const std::filesystem::path& ca_cert_path);

  // Checks that `sig_contents` (a .sig file's text; `sig_name` names it in errors) is a valid
  // consortium signature over data whose SHA-256 is `digest`.
  absl::Status VerifyDigest(const Sha256Digest& digest, std::string_view sig_contents,
                            std::string_view sig_name) const;
  // Hashes `file` (streaming) and checks it against `sig_path` (default SignaturePathFor(file)).
  absl::Status VerifyFile(const std::filesystem::path& file,
                          const std::filesystem::path& sig_path = {}) const;

 private:
  explicit SignatureVerifier(X509Ptr ca) : ca_(std::move(ca)) {}

  X509Ptr ca_;
};

// Checks that `cert` is a model-signing certificate (CN fedjoint-model-signing, keyUsage
// digitalSignature, EKU codeSigning) issued by `ca` and currently valid. Unauthenticated if not.
absl::Status CheckSigningCertificate(X509* cert, X509* ca);

}  // namespace fedjoint::common::security
