#include "common/security/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/atomic_file.h"
#include "common/base/status.h"
#include "common/base/status_macros.h"
#include "common/security/openssl_util.h"
#include "common/security/site_name.h"

namespace fedjoint::common::security {
namespace {

namespace fs = std::filesystem;

constexpr long kSecondsPerDay = 86400;
// Certificates start a few minutes in the past so a peer whose clock is slightly behind does
// not see a "not yet valid" certificate right after issuing.
constexpr long kBackdateSeconds = 300;

struct Extension {
  int nid;
  std::string value;
};

// An exclusive advisory lock on DIR/.lock for the lifetime of the object, so two operators (or
// two scripted `pki sign` runs) cannot interleave read-modify-write cycles on index.json.
class PkiLock {
 public:
  static absl::StatusOr<PkiLock> Acquire(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return base::ErrnoToStatus(errno, "cannot open lock file", path.string());
    if (::flock(fd, LOCK_EX) != 0) {
      int saved = errno;
      ::close(fd);
      return base::ErrnoToStatus(saved, "cannot lock", path.string());
    }
    return PkiLock(fd);
  }
  PkiLock(PkiLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  PkiLock& operator=(PkiLock&&) = delete;
  ~PkiLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }

 private:
  explicit PkiLock(int fd) : fd_(fd) {}
  int fd_;
};

absl::Status EnsureDirectory(const fs::path& dir, bool restrict_new) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return absl::OkStatus();
  if (fs::exists(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir.string(), ": exists and is not a folder"));
  }
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(dir.string(), ": cannot create folder: ", ec.message()));
  }
  if (restrict_new && ::chmod(dir.c_str(), 0700) != 0) {
    return base::ErrnoToStatus(errno, "cannot restrict permissions of", dir.string());
  }
  return absl::OkStatus();
}

absl::Status SetCommonName(X509_NAME* name, const std::string& cn) {
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return OpenSslError(absl::StrCat("cannot set common name '", cn, "'"));
  }
  return absl::OkStatus();
}

// Builds and signs an X.509 v3 certificate for `subject_key`. `issuer`/`issuer_key` are null
// for the self-signed CA. Extensions are added in order (subjectKeyIdentifier must precede
// authorityKeyIdentifier so a self-signed certificate can refer to itself).
absl::StatusOr<X509Ptr> BuildCertificate(EVP_PKEY* subject_key, const std::string& common_name,
                                         X509* issuer, EVP_PKEY* issuer_key, int days,
                                         const std::vector<Extension>& extensions,
                                         ASN1_INTEGER* serial = nullptr) {
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("cannot allocate certificate");
  Asn1IntegerPtr random_serial;
  if (serial == nullptr) {
    ASSIGN_OR_RETURN(random_serial, RandomSerial());
    serial = random_serial.get();
  }
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_serialNumber(cert.get(), serial) != 1 ||
      X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -kBackdateSeconds, nullptr) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) == nullptr ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return OpenSslError("cannot fill certificate fields");
  }
  RETURN_IF_ERROR(SetCommonName(X509_get_subject_name(cert.get()), common_name));
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1) {
    return OpenSslError("cannot set issuer name");
  }
  for (const Extension& ext : extensions) {
    RETURN_IF_ERROR(AddExtension(cert.get(), signer, ext.nid, ext.value));
  }
  EVP_PKEY* signing_key = issuer_key != nullptr ? issuer_key : subject_key;
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) <= 0) {
    return OpenSslError(absl::StrCat("cannot sign certificate for '", common_name, "'"));
  }
  return cert;
}

std::vector<Extension> LeafExtensions(const std::string& key_usage, const std::string& eku) {
  return {{NID_basic_constraints, "critical,CA:FALSE"},
          {NID_key_usage, "critical," + key_usage},
          {NID_ext_key_usage, eku},
          {NID_subject_key_identifier, "hash"},
          {NID_authority_key_identifier, "keyid:always"}};
}

absl::Status ValidateHostName(const std::string& host) {
  std::string_view rest = host;
  if (rest.substr(0, 2) == "*.") rest.remove_prefix(2);
  bool ok = !rest.empty() && rest.size() <= 253 && rest.front() != '.' && rest.front() != '-' &&
            rest.back() != '.' && rest.back() != '-';
  for (char c : rest) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid --host '", host,
        "': expected a DNS name (letters, digits, '-' and '.', optionally starting with '*.')"));
  }
  return absl::OkStatus();
}

absl::Status ValidateIp(const std::string& ip) {
  unsigned char buffer[16];
  if (inet_pton(AF_INET, ip.c_str(), buffer) != 1 && inet_pton(AF_INET6, ip.c_str(), buffer) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --ip '", ip, "': expected an IPv4 or IPv6 address"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ServerAltNames(const PkiInitOptions& options) {
  std::vector<std::string> names;
  for (const std::string& host : options.server_hosts) {
    RETURN_IF_ERROR(ValidateHostName(host));
    names.push_back("DNS:" + host);
  }
  for (const std::string& ip : options.server_ips) {
    RETURN_IF_ERROR(ValidateIp(ip));
    names.push_back("IP:" + ip);
  }
  if (names.empty()) {
    return absl::InvalidArgumentError(
        "the coordinator certificate needs at least one --host or --ip that sites will dial");
  }
  return absl::StrJoin(names, ",");
}

absl::Status WriteKey(const fs::path& path, EVP_PKEY* key) {
  ASSIGN_OR_RETURN(std::string pem, PrivateKeyToPem(key));
  return base::WriteFileAtomically(path, pem, 0600);
}

absl::Status WriteCert(const fs::path& path, X509* cert) {
  ASSIGN_OR_RETURN(std::string pem, CertificateToPem(cert));
  return base::WriteFileAtomically(path, pem, 0644);
}

absl::StatusOr<Asn1IntegerPtr> SerialFromHex(const std::string& hex) {
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, hex.c_str()) == 0) {
    return absl::DataLossError(absl::StrCat("serial '", hex, "' in the index is not hex"));
  }
  BignumPtr bn(raw);
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return OpenSslError("cannot convert serial");
  return serial;
}

// The CA certificate and key, checked to belong together.
struct CaMaterial {
  X509Ptr cert;
  EvpPkeyPtr key;
};

absl::StatusOr<CaMaterial> LoadCa(const PkiLayout& layout) {
  CaMaterial ca;
  ASSIGN_OR_RETURN(ca.cert, ReadCertificateFile(layout.ca_cert()));
  ASSIGN_OR_RETURN(ca.key, ReadPrivateKeyFile(layout.ca_key()));
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    DrainOpenSslErrors();
    return absl::FailedPreconditionError(absl::StrCat(layout.ca_key().string(),
                                                      ": does not match the CA certificate ",
                                                      layout.ca_cert().string()));
  }
  return ca;
}

// Builds the CRL of every revoked certificate in `index`, numbered index.crl_number.
absl::StatusOr<X509CrlPtr> BuildCrl(const PkiIndex& index, const CaMaterial& ca) {
  X509CrlPtr crl(X509_CRL_new());
  if (!crl) return OpenSslError("cannot allocate CRL");
  std::time_t now = std::time(nullptr);
  Asn1TimePtr last_update(X509_time_adj_ex(nullptr, 0, 0, &now));
  Asn1TimePtr next_update(X509_time_adj_ex(nullptr, kCrlLifetimeDays, 0, &now));
  if (!last_update || !next_update || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last_update.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update.get()) != 1) {
    return OpenSslError("cannot fill CRL fields");
  }
  for (const IssuedCertificate& cert : index.certificates) {
    if (!cert.revoked()) continue;
    ASSIGN_OR_RETURN(Asn1IntegerPtr serial, SerialFromHex(cert.serial));
    ASSIGN_OR_RETURN(std::time_t revoked_at, IsoToTime(cert.revoked_at));
    Asn1TimePtr when(X509_time_adj_ex(nullptr, 0, 0, &revoked_at));
    X509_REVOKED* entry = X509_REVOKED_new();
    if (entry == nullptr || !when || X509_REVOKED_set_serialNumber(entry, serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(entry, when.get()) != 1 ||
        X509_CRL_add0_revoked(crl.get(), entry) != 1) {
      X509_REVOKED_free(entry);
      return OpenSslError("cannot add revoked entry to CRL");
    }
  }
  X509_CRL_sort(crl.get());

  Asn1IntegerPtr number(ASN1_INTEGER_new());
  if (!number || ASN1_INTEGER_set_int64(number.get(), index.crl_number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return OpenSslError("cannot add crlNumber");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca.cert.get(), nullptr, nullptr, crl.get(), 0);
  X509ExtensionPtr akid(
      X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!akid || X509_CRL_add_ext(crl.get(), akid.get(), -1) != 1) {
    return OpenSslError("cannot add authorityKeyIdentifier to CRL");
  }
  if (X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) <= 0) {
    return OpenSslError("cannot sign CRL");
  }
  return crl;
}

// Bumps the CRL number, persists the index, then writes the CRL. The index goes first: it is the
// source of truth, and a CRL rebuilt from it later must never drop a revocation.
absl::Status WriteIndexAndCrl(const PkiLayout& layout, PkiIndex& index, const CaMaterial& ca) {
  ++index.crl_number;
  ASSIGN_OR_RETURN(X509CrlPtr crl, BuildCrl(index, ca));
  ASSIGN_OR_RETURN(std::string pem, CrlToPem(crl.get()));
  RETURN_IF_ERROR(WritePkiIndex(layout.index(), index));
  return base::WriteFileAtomically(layout.crl(), pem, 0644);
}

absl::Status CheckRequestKey(EVP_PKEY* key, const fs::path& csr_path) {
  int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_EC) {
    char curve[64] = {0};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof(curve), &len) == 1) {
      std::string_view name(curve, len);
      if (name == "prime256v1" || name == "P-256" || name == "secp384r1" || name == "P-384") {
        return absl::OkStatus();
      }
    }
    DrainOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat(csr_path.string(), ": EC key on an unsupported curve (use P-256 or P-384)"));
  }
  if (type == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(key) >= 2048) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(csr_path.string(), ": RSA key of ",
                                                   EVP_PKEY_get_bits(key),
                                                   " bits is too weak (use >= 2048, or P-256)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(csr_path.string(), ": unsupported key type (use ECDSA P-256)"));
}

}  // namespace

absl::Status InitPki(const fs::path& dir, const PkiInitOptions& options) {
  PkiLayout layout(dir);
  ASSIGN_OR_RETURN(std::string alt_names, ServerAltNames(options));
  std::error_code ec;
  if (!options.force && (fs::exists(layout.ca_key(), ec) || fs::exists(layout.ca_cert(), ec))) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir.string(), " already holds a consortium CA (", layout.ca_cert().string(),
        "); a new CA would invalidate every site certificate. Pass --force to replace it"));
  }
  RETURN_IF_ERROR(EnsureDirectory(dir, /*restrict_new=*/true));
  RETURN_IF_ERROR(EnsureDirectory(layout.issued_dir(), /*restrict_new=*/false));
  ASSIGN_OR_RETURN(PkiLock lock, PkiLock::Acquire(layout.lock()));

  // A short random tag makes two consortia's CAs distinguishable by name too.
  unsigned char tag[4];
  if (RAND_bytes(tag, sizeof(tag)) != 1) return OpenSslError("cannot draw random bytes");
  std::string ca_name = absl::StrCat(
      "fedjoint consortium CA ",
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(tag), sizeof(tag))));

  ASSIGN_OR_RETURN(EvpPkeyPtr ca_key, GenerateP256Key());
  ASSIGN_OR_RETURN(X509Ptr ca_cert,
                   BuildCertificate(ca_key.get(), ca_name, nullptr, nullptr, kCaLifetimeDays,
                                    {{NID_basic_constraints, "critical,CA:TRUE"},
                                     {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                     {NID_subject_key_identifier, "hash"},
                                     {NID_authority_key_identifier, "keyid:always"}}));

  ASSIGN_OR_RETURN(EvpPkeyPtr server_key, GenerateP256Key());
  std::vector<Extension> server_ext = LeafExtensions("digitalSignature", "serverAuth");
  server_ext.push_back({NID_subject_alt_name, alt_names});
  ASSIGN_OR_RETURN(X509Ptr server_cert,
                   BuildCertificate(server_key.get(), kCoordinatorCommonName, ca_cert.get(),
                                    ca_key.get(), kServerLifetimeDays, server_ext));

  ASSIGN_OR_RETURN(EvpPkeyPtr signing_key, GenerateP256Key());
  ASSIGN_OR_RETURN(
      X509Ptr signing_cert,
      BuildCertificate(signing_key.get(), kModelSigningCommonName, ca_cert.get(), ca_key.get(),
                       kSigningLifetimeDays, LeafExtensions("digitalSignature", "codeSigning")));

  RETURN_IF_ERROR(WriteKey(layout.ca_key(), ca_key.get()));
  RETURN_IF_ERROR(WriteKey(layout.server_key(), server_key.get()));
  RETURN_IF_ERROR(WriteKey(layout.signing_key(), signing_key.get()));
  RETURN_IF_ERROR(WriteCert(layout.server_cert(), server_cert.get()));
  RETURN_IF_ERROR(WriteCert(layout.signing_cert(), signing_cert.get()));
  CaMaterial ca{std::move(ca_cert), std::move(ca_key)};
  PkiIndex index;  // a new CA starts a new index: the old certificates are meaningless now
  RETURN_IF_ERROR(WriteIndexAndCrl(layout, index, ca));
  // Written last: its presence marks a complete PKI for the "already exists" check.
  return WriteCert(layout.ca_cert(), ca.cert.get());
}

absl::StatusOr<SiteRequestFiles> CreateSiteRequest(std::string_view site, const fs::path& out_dir,
                                                   bool force) {
  RETURN_IF_ERROR(ValidateSiteName(site));
  SiteRequestFiles files{out_dir / (std::string(site) + ".key"),
                         out_dir / (std::string(site) + ".csr")};
  std::error_code ec;
  if (!force && fs::exists(files.key, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(
        files.key.string(),
        " already exists; a certificate may already be issued for it. Pass --force to replace it"));
  }
  RETURN_IF_ERROR(EnsureDirectory(out_dir, /*restrict_new=*/true));

  ASSIGN_OR_RETURN(EvpPkeyPtr key, GenerateP256Key());
  X509ReqPtr csr(X509_REQ_new());
  if (!csr || X509_REQ_set_version(csr.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_pubkey(csr.get(), key.get()) != 1) {
    return OpenSslError("cannot build certificate signing request");
  }
  RETURN_IF_ERROR(SetCommonName(X509_REQ_get_subject_name(csr.get()), std::string(site)));
  if (X509_REQ_sign(csr.get(), key.get(), EVP_sha256()) <= 0) {
    return OpenSslError("cannot sign certificate signing request");
  }
  ASSIGN_OR_RETURN(std::string csr_pem, CsrToPem(csr.get()));
  RETURN_IF_ERROR(WriteKey(files.key, key.get()));
  RETURN_IF_ERROR(base::WriteFileAtomically(files.csr, csr_pem, 0644));
  return files;
}

absl::StatusOr<IssuedCertificate> SignSiteRequest(const fs::path& pki_dir, const fs::path& csr_path,
                                                  const IssueOptions& options) {
  PkiLayout layout(pki_dir);
  ASSIGN_OR_RETURN(X509ReqPtr csr, ReadCsrFile(csr_path));
  EVP_PKEY* public_key = X509_REQ_get0_pubkey(csr.get());
  if (public_key == nullptr) {
    DrainOpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat(csr_path.string(), ": has no public key"));
  }
  if (X509_REQ_verify(csr.get(), public_key) != 1) {
    DrainOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat(csr_path.string(),
                     ": the request's self-signature does not verify (corrupted or tampered CSR)"));
  }
  RETURN_IF_ERROR(CheckRequestKey(public_key, csr_path));
  std::string site = CommonName(X509_REQ_get_subject_name(csr.get()));
  if (absl::Status valid = ValidateSiteName(site); !valid.ok()) {
    return base::Annotate(valid, absl::StrCat(csr_path.string(), ": common name"));
  }
  if (options.days < 1 || options.days > kCaLifetimeDays) {
    return absl::InvalidArgumentError(
        absl::StrCat("--days ", options.days, " is out of range (1..", kCaLifetimeDays, ")"));
  }

  ASSIGN_OR_RETURN(PkiLock lock, PkiLock::Acquire(layout.lock()));
  ASSIGN_OR_RETURN(CaMaterial ca, LoadCa(layout));
  std::time_t now = std::time(nullptr);
  std::time_t not_after = now + options.days * kSecondsPerDay;
  ASSIGN_OR_RETURN(std::time_t ca_not_after, Asn1TimeToTime(X509_get0_notAfter(ca.cert.get())));
  if (not_after >= ca_not_after) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--days ", options.days, " would make the certificate outlive the CA (which expires ",
        TimeToIso(ca_not_after), ")"));
  }
  ASSIGN_OR_RETURN(PkiIndex index, ReadPkiIndex(layout.index()));
  for (const IssuedCertificate& existing : index.certificates) {
    if (existing.name == site && existing.Live(now) && !options.force) {
      return absl::AlreadyExistsError(
          absl::StrCat("site '", site, "' already holds a valid certificate (serial ",
                       existing.serial, ", expires ", existing.not_after, "); run 'pki revoke ",
                       site, "' first, or pass --force to issue another one"));
    }
  }

  Asn1IntegerPtr serial;
  std::string serial_hex;
  for (bool unique = false; !unique;) {
    ASSIGN_OR_RETURN(serial, RandomSerial());
    serial_hex = SerialToHex(serial.get());
    unique = true;
    for (const IssuedCertificate& existing : index.certificates) {
      unique = unique && existing.serial != serial_hex;
    }
  }
  std::vector<Extension> extensions = LeafExtensions("digitalSignature", "clientAuth");
  extensions.push_back({NID_subject_alt_name, "URI:urn:fedjoint:site:" + site});
  ASSIGN_OR_RETURN(X509Ptr cert, BuildCertificate(public_key, site, ca.cert.get(), ca.key.get(),
                                                  options.days, extensions, serial.get()));

  IssuedCertificate entry;
  entry.name = site;
  entry.serial = serial_hex;
  entry.not_before = Asn1TimeToIso(X509_get0_notBefore(cert.get()));
  entry.not_after = Asn1TimeToIso(X509_get0_notAfter(cert.get()));
  entry.file = fs::path("issued") / (site + ".crt");
  index.certificates.push_back(entry);
  RETURN_IF_ERROR(EnsureDirectory(layout.issued_dir(), /*restrict_new=*/false));
  RETURN_IF_ERROR(WritePkiIndex(layout.index(), index));
  RETURN_IF_ERROR(WriteCert(layout.issued_cert(site), cert.get()));
  return entry;
}

absl::StatusOr<std::vector<IssuedCertificate>> RevokeSite(const fs::path& pki_dir,
                                                          std::string_view site) {
  RETURN_IF_ERROR(ValidateSiteName(site));
  PkiLayout layout(pki_dir);
  ASSIGN_OR_RETURN(PkiLock lock, PkiLock::Acquire(layout.lock()));
  ASSIGN_OR_RETURN(CaMaterial ca, LoadCa(layout));
  ASSIGN_OR_RETURN(PkiIndex index, ReadPkiIndex(layout.index()));
  std::string now = TimeToIso(std::time(nullptr));
  std::vector<IssuedCertificate> revoked;
  for (IssuedCertificate& cert : index.certificates) {
    if (cert.name == site && !cert.revoked()) {
      cert.revoked_at = now;
      revoked.push_back(cert);
    }
  }
  if (revoked.empty()) {
    return absl::NotFoundError(absl::StrCat("site '", std::string(site),
                                            "' has no unrevoked certificate in ",
                                            layout.index().string()));
  }
  RETURN_IF_ERROR(WriteIndexAndCrl(layout, index, ca));
  return revoked;
}

absl::Status RefreshCrl(const fs::path& pki_dir) {
  PkiLayout layout(pki_dir);
  ASSIGN_OR_RETURN(PkiLock lock, PkiLock::Acquire(layout.lock()));
  ASSIGN_OR_RETURN(CaMaterial ca, LoadCa(layout));
  ASSIGN_OR_RETURN(PkiIndex index, ReadPkiIndex(layout.index()));
  return WriteIndexAndCrl(layout, index, ca);
}

absl::StatusOr<std::vector<IssuedCertificate>> ListCertificates(const fs::path& pki_dir) {
  ASSIGN_OR_RETURN(PkiIndex index, ReadPkiIndex(PkiLayout(pki_dir).index()));
  return index.certificates;
}

}  // namespace fedjoint::common::security
