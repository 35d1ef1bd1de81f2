#include "common/security/site_name.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fedjoint::common::security {
namespace {

constexpr std::size_t kMaxSiteNameLength = 63;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

}  // namespace

absl::Status ValidateSiteName(std::string_view name) {
  std::string quoted = absl::StrCat("invalid site name '", std::string(name), "': ");
  if (name.empty()) return absl::InvalidArgumentError("invalid site name: it is empty");
  if (name.size() > kMaxSiteNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(quoted, "longer than ", kMaxSiteNameLength, " characters"));
  }
  if (!IsLowerAlnum(name.front())) {
    return absl::InvalidArgumentError(
        absl::StrCat(quoted, "must start with a lower-case letter or digit"));
  }
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          quoted,
          "only lower-case letters, digits and '-' are allowed (pattern [a-z0-9][a-z0-9-]{0,62})"));
    }
  }
  if (absl::StartsWith(absl::string_view(name.data(), name.size()), "fedjoint-")) {
    return absl::InvalidArgumentError(absl::StrCat(
        quoted, "the prefix 'fedjoint-' is reserved for the consortium's own certificates"));
  }
  return absl::OkStatus();
}

}  // namespace fedjoint::common::security
