#include "common/security/model_signing.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/base/atomic_file.h"
#include "common/base/status.h"
#include "common/base/status_macros.h"
#include "common/security/pki.h"

namespace fedjoint::common::security {
namespace {

constexpr char kFormat[] = "fedjoint-signature";
constexpr int kVersion = 1;
constexpr char kAlgorithm[] = "ecdsa-p256-sha256";
constexpr std::size_t kMaxSignatureFileBytes = 64u << 10;

absl::Status CheckSigningPurpose(X509* cert) {
  std::string cn = CommonName(X509_get_subject_name(cert));
  // X509_get_extended_key_usage also caches the extensions; UINT32_MAX means "no EKU at all".
  std::uint32_t eku = X509_get_extended_key_usage(cert);
  std::uint32_t key_usage = X509_get_key_usage(cert);
  if (cn != kModelSigningCommonName || eku == UINT32_MAX || (eku & XKU_CODE_SIGN) == 0 ||
      (key_usage & KU_DIGITAL_SIGNATURE) == 0) {
    return absl::UnauthenticatedError(absl::StrCat(
        "certificate '", cn, "' is not a model-signing certificate (expected CN ",
        kModelSigningCommonName, ", keyUsage digitalSignature, extendedKeyUsage codeSigning)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::filesystem::path SignaturePathFor(const std::filesystem::path& file) {
  std::filesystem::path sig = file;
  sig += ".sig";
  return sig;
}

absl::Status CheckSigningCertificate(X509* cert, X509* ca) {
  int error = X509_V_OK;
  if (absl::Status chain = VerifyChain(cert, ca, /*purpose=*/0, &error); !chain.ok()) {
    if (IsWrongIssuerError(error)) {
      return absl::UnauthenticatedError(absl::StrCat(
          "signing certificate is not issued by the consortium CA (", chain.message(), ")"));
    }
    return absl::UnauthenticatedError(
        absl::StrCat("signing certificate is not valid: ", chain.message()));
  }
  return CheckSigningPurpose(cert);
}

absl::StatusOr<ModelSigner> ModelSigner::Load(const std::filesystem::path& key_path,
                                              const std::filesystem::path& cert_path) {
  ASSIGN_OR_RETURN(EvpPkeyPtr key, ReadPrivateKeyFile(key_path));
  ASSIGN_OR_RETURN(X509Ptr cert, ReadCertificateFile(cert_path));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    DrainOpenSslErrors();
    return absl::FailedPreconditionError(
        absl::StrCat(key_path.string(), ": does not match the certificate ", cert_path.string()));
  }
  if (absl::Status purpose = CheckSigningPurpose(cert.get()); !purpose.ok()) {
    return base::Annotate(purpose, cert_path.string());
  }
  ASSIGN_OR_RETURN(std::string pem, CertificateToPem(cert.get()));
  return ModelSigner(std::move(key), std::move(pem));
}

absl::StatusOr<std::string> ModelSigner::SignDigest(const Sha256Digest& digest) const {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key_.get(), nullptr));
  std::size_t len = 0;
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1) {
    return OpenSslError("cannot start signing");
  }
  std::string signature(len, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                    digest.data(), digest.size()) != 1) {
    return OpenSslError("cannot sign digest");
  }
  signature.resize(len);
  nlohmann::ordered_json json = {
      {"format", kFormat},
      {"version", kVersion},
      {"algorithm", kAlgorithm},
      {"sha256", base::DigestToHex(digest)},
      {"signature", absl::Base64Escape(signature)},
      {"certificate", cert_pem_},
      {"signed_at", TimeToIso(std::time(nullptr))},
  };
  return json.dump(2) + "\n";
}

absl::Status ModelSigner::SignFile(const std::filesystem::path& file,
                                   const std::filesystem::path& sig_path) const {
  ASSIGN_OR_RETURN(Sha256Digest digest, base::Sha256File(file));
  ASSIGN_OR_RETURN(std::string contents, SignDigest(digest));
  return base::WriteFileAtomically(sig_path.empty() ? SignaturePathFor(file) : sig_path, contents,
                                   0644);
}

absl::StatusOr<SignatureVerifier> SignatureVerifier::Load(
    const std::filesystem::path& ca_cert_path) {
  ASSIGN_OR_RETURN(X509Ptr ca, ReadCertificateFile(ca_cert_path));
  return SignatureVerifier(std::move(ca));
}

absl::Status SignatureVerifier::VerifyDigest(const Sha256Digest& digest,
                                             std::string_view sig_contents,
                                             std::string_view sig_name) const {
  std::string name(sig_name);
  std::string signed_hex;
  std::string signature;
  std::string cert_pem;
  try {
    nlohmann::json json = nlohmann::json::parse(sig_contents);
    if (!json.is_object() || json.value("format", "") != kFormat ||
        json.value("version", 0) != kVersion) {
      return absl::DataLossError(absl::StrCat(name, ": not a fedjoint signature file (format ",
                                              kFormat, " version ", kVersion, ")"));
    }
    if (json.value("algorithm", "") != kAlgorithm) {
      return absl::DataLossError(absl::StrCat(name, ": unsupported algorithm '",
                                              json.value("algorithm", ""), "' (expected ",
                                              kAlgorithm, ")"));
    }
    signed_hex = json.at("sha256").get<std::string>();
    if (!absl::Base64Unescape(json.at("signature").get<std::string>(), &signature)) {
      return absl::DataLossError(absl::StrCat(name, ": \"signature\" is not base64"));
    }
    cert_pem = json.at("certificate").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(name, ": malformed signature file: ", e.what()));
  }
  std::string actual_hex = base::DigestToHex(digest);
  if (signed_hex != actual_hex) {
    return absl::DataLossError(absl::StrCat(name, ": the data's SHA-256 is ", actual_hex,
                                            " but the signature covers ", signed_hex,
                                            " (the file is corrupt or was modified)"));
  }
  auto cert = ParseCertificatePem(cert_pem, absl::StrCat(name, ": \"certificate\""));
  if (!cert.ok()) return absl::DataLossError(cert.status().message());
  if (absl::Status trusted = CheckSigningCertificate(cert->get(), ca_.get()); !trusted.ok()) {
    return base::Annotate(trusted, name);
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(X509_get0_pubkey(cert->get()), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) {
    return OpenSslError("cannot start signature verification");
  }
  int verified =
      EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                      signature.size(), digest.data(), digest.size());
  DrainOpenSslErrors();
  if (verified != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        name, ": signature does not verify with the consortium's model-signing certificate"));
  }
  return absl::OkStatus();
}

absl::Status SignatureVerifier::VerifyFile(const std::filesystem::path& file,
                                           const std::filesystem::path& sig_path) const {
  std::filesystem::path sig = sig_path.empty() ? SignaturePathFor(file) : sig_path;
  ASSIGN_OR_RETURN(std::string contents, base::ReadSmallFile(sig, kMaxSignatureFileBytes));
  ASSIGN_OR_RETURN(Sha256Digest digest, base::Sha256File(file));
  return VerifyDigest(digest, contents, sig.string());
}

}  // namespace fedjoint::common::security
