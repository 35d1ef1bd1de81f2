#include "common/security/pki_index.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/atomic_file.h"
#include "common/security/openssl_util.h"

namespace fedjoint::common::security {
namespace {

constexpr char kFormat[] = "fedjoint-pki-index";
constexpr int kVersion = 1;

}  // namespace

bool IssuedCertificate::Live(std::time_t now) const {
  if (revoked()) return false;
  auto expiry = IsoToTime(not_after);
  return expiry.ok() && *expiry > now;
}

absl::StatusOr<PkiIndex> ReadPkiIndex(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": file not found (run 'pki init')"));
  }
  auto text = base::ReadSmallFile(path);
  if (!text.ok()) return text.status();
  auto bad = [&](std::string_view what) {
    return absl::DataLossError(absl::StrCat(path.string(), ": ", std::string(what)));
  };
  try {
    nlohmann::json json = nlohmann::json::parse(*text);
    if (!json.is_object() || json.value("format", "") != kFormat) {
      return bad(absl::StrCat("not a fedjoint PKI index (\"format\" is not \"", kFormat, "\")"));
    }
    if (json.value("version", 0) != kVersion) {
      return bad(absl::StrCat("unsupported version ", json.value("version", 0), " (expected ",
                              kVersion, ")"));
    }
    PkiIndex index;
    index.crl_number = json.at("crl_number").get<std::int64_t>();
    for (const auto& entry : json.at("certificates")) {
      IssuedCertificate cert;
      cert.name = entry.at("name").get<std::string>();
      cert.serial = entry.at("serial").get<std::string>();
      cert.not_before = entry.at("not_before").get<std::string>();
      cert.not_after = entry.at("not_after").get<std::string>();
      if (entry.contains("revoked_at") && !entry.at("revoked_at").is_null()) {
        cert.revoked_at = entry.at("revoked_at").get<std::string>();
      }
      cert.file = entry.at("file").get<std::string>();
      index.certificates.push_back(std::move(cert));
    }
    return index;
  } catch (const nlohmann::json::exception& e) {
    return bad(absl::StrCat("malformed index: ", e.what()));
  }
}

absl::Status WritePkiIndex(const std::filesystem::path& path, const PkiIndex& index) {
  // ordered_json keeps the fields in the documented order for people reading the file.
  nlohmann::ordered_json certificates = nlohmann::ordered_json::array();
  for (const IssuedCertificate& cert : index.certificates) {
    certificates.push_back({
        {"name", cert.name},
        {"serial", cert.serial},
        {"not_before", cert.not_before},
        {"not_after", cert.not_after},
        {"revoked_at",
         cert.revoked() ? nlohmann::ordered_json(cert.revoked_at) : nlohmann::ordered_json()},
        {"file", cert.file},
    });
  }
  nlohmann::ordered_json json = {{"format", kFormat},
                                 {"version", kVersion},
                                 {"crl_number", index.crl_number},
                                 {"certificates", std::move(certificates)}};
  return base::WriteFileAtomically(path, json.dump(2) + "\n", 0644);
}

}  // namespace fedjoint::common::security
