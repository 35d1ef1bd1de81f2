#include "common/security/openssl_util.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/base/atomic_file.h"

namespace fedjoint::common::security {
namespace {

// PEM files here are small; anything bigger is not what we expect.
constexpr std::size_t kMaxPemBytes = 1u << 20;
// CRLs grow with revocations; each entry is ~40 bytes, so 16 MiB is far beyond any consortium.
constexpr std::size_t kMaxCrlBytes = 16u << 20;

BioPtr MemoryBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

absl::StatusOr<std::string> BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0 || data == nullptr) return OpenSslError("cannot read memory BIO");
  return std::string(data, static_cast<std::size_t>(len));
}

// Never prompt on a terminal for a passphrase: our keys are unencrypted, an encrypted one is an
// error to report, not a reason to block.
int NoPassphrase(char*, int, int, void*) { return -1; }

absl::Status ParseError(std::string_view what, std::string_view source) {
  std::string detail = DrainOpenSslErrors();
  return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": not a PEM ",
                                                 std::string(what),
                                                 detail.empty() ? "" : " (" + detail + ")"));
}

template <typename Parsed>
absl::StatusOr<Parsed> ReadAndParse(const std::filesystem::path& path, std::size_t max_bytes,
                                    absl::StatusOr<Parsed> (*parse)(std::string_view,
                                                                    std::string_view)) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": file not found"));
  }
  auto text = base::ReadSmallFile(path, max_bytes);
  if (!text.ok()) return text.status();
  return parse(*text, path.string());
}

}  // namespace

std::string DrainOpenSslErrors() {
  std::string out;
  unsigned long code;
  char buffer[256];
  while ((code = ERR_get_error()) != 0) {
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out;
}

absl::Status OpenSslError(std::string_view what, absl::StatusCode code) {
  std::string detail = DrainOpenSslErrors();
  return absl::Status(code, absl::StrCat(std::string(what), detail.empty() ? "" : ": " + detail));
}

absl::StatusOr<X509Ptr> ParseCertificatePem(std::string_view pem, std::string_view source) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!cert) return ParseError("certificate", source);
  return cert;
}

absl::StatusOr<X509ReqPtr> ParseCsrPem(std::string_view pem, std::string_view source) {
  BioPtr bio = MemoryBio(pem);
  X509ReqPtr csr(PEM_read_bio_X509_REQ(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!csr) return ParseError("certificate signing request", source);
  return csr;
}

absl::StatusOr<X509CrlPtr> ParseCrlPem(std::string_view pem, std::string_view source) {
  BioPtr bio = MemoryBio(pem);
  X509CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!crl) return ParseError("certificate revocation list", source);
  return crl;
}

absl::StatusOr<EvpPkeyPtr> ParsePrivateKeyPem(std::string_view pem, std::string_view source) {
  BioPtr bio = MemoryBio(pem);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) return ParseError("private key (or it is encrypted)", source);
  return key;
}

absl::StatusOr<X509Ptr> ReadCertificateFile(const std::filesystem::path& path) {
  return ReadAndParse<X509Ptr>(path, kMaxPemBytes, &ParseCertificatePem);
}
absl::StatusOr<X509ReqPtr> ReadCsrFile(const std::filesystem::path& path) {
  return ReadAndParse<X509ReqPtr>(path, kMaxPemBytes, &ParseCsrPem);
}
absl::StatusOr<X509CrlPtr> ReadCrlFile(const std::filesystem::path& path) {
  return ReadAndParse<X509CrlPtr>(path, kMaxCrlBytes, &ParseCrlPem);
}
absl::StatusOr<EvpPkeyPtr> ReadPrivateKeyFile(const std::filesystem::path& path) {
  return ReadAndParse<EvpPkeyPtr>(path, kMaxPemBytes, &ParsePrivateKeyPem);
}

absl::StatusOr<std::string> CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("cannot write PEM");
  return BioContents(bio.get());
}

absl::StatusOr<std::string> CsrToPem(X509_REQ* csr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), csr) != 1) {
    return OpenSslError("cannot write PEM");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> CrlToPem(X509_CRL* crl) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl) != 1) {
    return OpenSslError("cannot write PEM");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("cannot write PEM");
  }
  return BioContents(bio.get());
}

absl::StatusOr<EvpPkeyPtr> GenerateP256Key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("cannot generate a P-256 key");
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext) {
    return OpenSslError(absl::StrCat("cannot build extension ", OBJ_nid2sn(nid), "=", value));
  }
  if (X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("cannot add extension ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

std::string CommonName(const X509_NAME* name) {
  if (name == nullptr) return "";
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::string SerialToHex(const ASN1_INTEGER* serial) {
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return "";
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return "";
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

absl::StatusOr<std::string> NormalizeSerialHex(std::string_view text) {
  std::string digits;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          absl::StrCat("serial number '", std::string(text), "' is not hexadecimal"));
    }
    digits.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  std::size_t first = digits.find_first_not_of('0');
  if (digits.empty()) {
    return absl::InvalidArgumentError("empty serial number");
  }
  return first == std::string::npos ? std::string("0") : digits.substr(first);
}

absl::StatusOr<Asn1IntegerPtr> RandomSerial() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return OpenSslError("cannot draw a random serial");
  bytes[0] &= 0x7F;  // positive as a DER INTEGER
  bytes[0] |= 0x40;  // and always 16 bytes long, never zero
  BignumPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn) return OpenSslError("cannot build serial");
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return OpenSslError("cannot build serial");
  return serial;
}

std::string TimeToIso(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

absl::StatusOr<std::time_t> IsoToTime(std::string_view text) {
  std::tm tm{};
  int consumed = 0;
  std::string copy(text);
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      consumed != static_cast<int>(copy.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", copy, "' is not a UTC time like 2025-01-31T12:00:00Z"));
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm(&tm);
}

absl::StatusOr<std::time_t> Asn1TimeToTime(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return OpenSslError("invalid ASN.1 time");
  return timegm(&tm);
}

std::string Asn1TimeToIso(const ASN1_TIME* t) {
  auto time = Asn1TimeToTime(t);
  return time.ok() ? TimeToIso(*time) : std::string("invalid");
}

absl::Status VerifyChain(X509* cert, X509* ca, int purpose, int* x509_error) {
  if (x509_error != nullptr) *x509_error = X509_V_OK;
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr) != 1) {
    return OpenSslError("cannot set up certificate verification");
  }
  if (purpose != 0 && X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1) {
    return OpenSslError("cannot set verification purpose");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int error = X509_STORE_CTX_get_error(ctx.get());
    if (x509_error != nullptr) *x509_error = error;
    DrainOpenSslErrors();
    return absl::UnauthenticatedError(X509_verify_cert_error_string(error));
  }
  return absl::OkStatus();
}

bool IsWrongIssuerError(int x509_error) {
  switch (x509_error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_AKID_SKID_MISMATCH:
    case X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH:
      return true;
    default:
      return false;
  }
}

}  // namespace fedjoint::common::security
