// Thin RAII and error helpers over OpenSSL 3 for the security module: owning pointers, PEM
// parsing that names the file on failure, key generation, certificate extensions, times and
// serial numbers. Everything returns absl::Status; OpenSSL's error queue is drained into the
// message so a failure says what OpenSSL objected to.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedjoint::common::security {

template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSslDeleter<X509_REQ_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, OpenSslDeleter<X509_NAME_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, OpenSslDeleter<ASN1_TIME_free>>;

// Drains OpenSSL's error queue into one readable string ("" when it is empty).
std::string DrainOpenSslErrors();

// An InternalError (or `code`) "<what>: <openssl errors>", draining the error queue.
absl::Status OpenSslError(std::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal);

// PEM parsing. `source` names where the text came from (usually a file) for error messages.
absl::StatusOr<X509Ptr> ParseCertificatePem(std::string_view pem, std::string_view source);
absl::StatusOr<X509ReqPtr> ParseCsrPem(std::string_view pem, std::string_view source);
absl::StatusOr<X509CrlPtr> ParseCrlPem(std::string_view pem, std::string_view source);
absl::StatusOr<EvpPkeyPtr> ParsePrivateKeyPem(std::string_view pem, std::string_view source);

// Reads a small PEM file and parses it; NotFound when the file is missing, InvalidArgument when
// it is not the expected PEM object. Messages name the file.
absl::StatusOr<X509Ptr> ReadCertificateFile(const std::filesystem::path& path);
absl::StatusOr<X509ReqPtr> ReadCsrFile(const std::filesystem::path& path);
absl::StatusOr<X509CrlPtr> ReadCrlFile(const std::filesystem::path& path);
absl::StatusOr<EvpPkeyPtr> ReadPrivateKeyFile(const std::filesystem::path& path);

// PEM serialisation (private keys as unencrypted PKCS#8: they are protected by file mode 0600).
absl::StatusOr<std::string> CertificateToPem(X509* cert);
absl::StatusOr<std::string> CsrToPem(X509_REQ* csr);
absl::StatusOr<std::string> CrlToPem(X509_CRL* crl);
absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key);

// A fresh ECDSA key on NIST P-256 (prime256v1).
absl::StatusOr<EvpPkeyPtr> GenerateP256Key();

// Adds a v3 extension given in openssl.cnf syntax (e.g. "critical,CA:TRUE") to `cert`, with
// `issuer` as the issuing certificate (for authorityKeyIdentifier). `value` must come from code or
// validated input: it is parsed by OpenSSL's config syntax.
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value);

// The first commonName of `name` ("" when there is none).
std::string CommonName(const X509_NAME* name);

// Serial numbers as upper-case hex without leading zeros ("0" for zero), the form BN_bn2hex
// prints. NormalizeSerialHex accepts any case, ':' separators and leading zeros.
std::string SerialToHex(const ASN1_INTEGER* serial);
absl::StatusOr<std::string> NormalizeSerialHex(std::string_view text);
// A random positive serial of 16 bytes (RFC 5280 allows at most 20 octets).
absl::StatusOr<Asn1IntegerPtr> RandomSerial();

// Times as ISO 8601 UTC ("2025-01-31T12:00:00Z").
std::string TimeToIso(std::time_t t);
absl::StatusOr<std::time_t> IsoToTime(std::string_view text);
absl::StatusOr<std::time_t> Asn1TimeToTime(const ASN1_TIME* t);
std::string Asn1TimeToIso(const ASN1_TIME* t);

// Verifies that `cert` chains to the single trust anchor `ca` (no intermediates), at the
// current time, with OpenSSL's checks (signatures, validity, CA basicConstraints/keyUsage).
// `purpose` is an X509_PURPOSE_* id or 0 for none. Returns Unauthenticated with OpenSSL's reason;
// `x509_error` (optional) receives the X509_V_ERR_* code.
absl::Status VerifyChain(X509* cert, X509* ca, int purpose, int* x509_error = nullptr);

// True for the verification errors that mean "not issued by this CA" (as opposed to, e.g., an
// expired certificate from the right CA).
bool IsWrongIssuerError(int x509_error);

}  // namespace fedjoint::common::security
