// Site names: the identity a site's certificate carries (its CN) and the name the coordinator
// uses in logs, state and round records.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace fedjoint::common::security {

// Checks `name` against `[a-z0-9][a-z0-9-]{0,62}` (a DNS label, lower case, so it is safe in
// file names, URIs and logs) and refuses the prefix "fedjoint-", which is reserved for the
// consortium's own certificates (coordinator, model signing). InvalidArgument names the rule.
absl::Status ValidateSiteName(std::string_view name);

}  // namespace fedjoint::common::security
