#include "common/security/revocation_list.h"

#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"
#include "common/base/status_macros.h"
#include "common/log/logging.h"

namespace fedjoint::common::security {

RevocationList::RevocationList(std::filesystem::path crl_path, X509Ptr ca, Options options)
    : crl_path_(std::move(crl_path)), ca_(std::move(ca)), options_(options) {}

absl::StatusOr<std::shared_ptr<RevocationList>> RevocationList::Load(
    const std::filesystem::path& crl_path, const std::filesystem::path& ca_cert_path,
    Options options) {
  ASSIGN_OR_RETURN(X509Ptr ca, ReadCertificateFile(ca_cert_path));
  std::shared_ptr<RevocationList> list(new RevocationList(crl_path, std::move(ca), options));
  ASSIGN_OR_RETURN(list->stamp_, Stat(crl_path));
  ASSIGN_OR_RETURN(list->current_, list->ReadAndVerify());
  list->last_check_ = std::chrono::steady_clock::now();
  return list;
}

absl::StatusOr<RevocationList::FileStamp> RevocationList::Stat(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return base::ErrnoToStatus(errno, "cannot stat", path.string());
  FileStamp stamp;
  stamp.inode = st.st_ino;
  stamp.size = st.st_size;
  stamp.mtime_ns =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return stamp;
}

absl::StatusOr<RevocationList::Parsed> RevocationList::ReadAndVerify() const {
  ASSIGN_OR_RETURN(X509CrlPtr crl, ReadCrlFile(crl_path_));
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca_.get())) != 0) {
    return absl::UnauthenticatedError(
        absl::StrCat(crl_path_.string(), ": CRL is not issued by the consortium CA (issuer is '",
                     CommonName(X509_CRL_get_issuer(crl.get())), "')"));
  }
  EVP_PKEY* ca_key = X509_get0_pubkey(ca_.get());
  if (ca_key == nullptr || X509_CRL_verify(crl.get(), ca_key) != 1) {
    DrainOpenSslErrors();
    return absl::UnauthenticatedError(
        absl::StrCat(crl_path_.string(), ": CRL signature does not verify with the consortium CA"));
  }
  Parsed parsed;
  int critical = 0;
  Asn1IntegerPtr number(static_cast<ASN1_INTEGER*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, &critical, nullptr)));
  if (number) {
    std::int64_t value = 0;
    if (ASN1_INTEGER_get_int64(&value, number.get()) == 1) parsed.crl_number = value;
  }
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const X509_REVOKED* entry = sk_X509_REVOKED_value(revoked, i);
    parsed.serials.insert(SerialToHex(X509_REVOKED_get0_serialNumber(entry)));
  }
  std::time_t now = std::time(nullptr);
  const ASN1_TIME* next_update = X509_CRL_get0_nextUpdate(crl.get());
  if (next_update != nullptr && X509_cmp_time(next_update, &now) < 0) {
    // Our own CRL: still the best knowledge we have, so keep enforcing it, but tell the operator.
    log::Get("security")
        ->warn("{}: CRL passed its nextUpdate ({}); run 'pki crl' to refresh it",
               crl_path_.string(), Asn1TimeToIso(next_update));
  }
  DrainOpenSslErrors();
  return parsed;
}

absl::Status RevocationList::ReloadIfChangedLocked() {
  last_check_ = std::chrono::steady_clock::now();
  auto stamp = Stat(crl_path_);
  if (!stamp.ok()) {
    if (stamp_.size != -1) {
      log::Get("security")
          ->error("{}; keeping the last revocation list ({} revoked)",
                  std::string(stamp.status().message()), current_.serials.size());
    }
    stamp_ = FileStamp{};
    return stamp.status();
  }
  if (*stamp == stamp_) return absl::OkStatus();
  stamp_ = *stamp;
  auto parsed = ReadAndVerify();
  if (parsed.ok() && parsed->crl_number < current_.crl_number) {
    parsed = absl::FailedPreconditionError(absl::StrCat(
        crl_path_.string(), ": CRL number ", parsed->crl_number, " is older than the loaded one (",
        current_.crl_number, "); refusing the rollback"));
  }
  if (!parsed.ok()) {
    log::Get("security")
        ->error("{}; keeping the last revocation list ({} revoked)",
                std::string(parsed.status().message()), current_.serials.size());
    return parsed.status();
  }
  log::Get("security")
      ->info("{}: reloaded CRL number {} ({} revoked)", crl_path_.string(), parsed->crl_number,
             parsed->serials.size());
  current_ = std::move(*parsed);
  return absl::OkStatus();
}

absl::Status RevocationList::ReloadIfChanged() {
  std::lock_guard<std::mutex> lock(mutex_);
  return ReloadIfChangedLocked();
}

bool RevocationList::IsRevoked(std::string_view serial_hex) {
  auto serial = NormalizeSerialHex(serial_hex);
  if (!serial.ok()) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  if (std::chrono::steady_clock::now() - last_check_ >= options_.check_interval) {
    ReloadIfChangedLocked().IgnoreError();  // logged inside; the last good list stays
  }
  return current_.serials.count(*serial) > 0;
}

std::int64_t RevocationList::crl_number() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_.crl_number;
}

std::size_t RevocationList::revoked_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_.serials.size();
}

}  // namespace fedjoint::common::security
