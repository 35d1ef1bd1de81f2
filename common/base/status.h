// Small helpers around absl::Status shared by every module.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace fedjoint::common::base {

// Returns `status` with `context` prepended to its message ("context: message"), keeping the code.
// Used where an error crosses a boundary and the caller knows what was being done (which file,
// which peer), so the final message reads from the outside in.
absl::Status Annotate(const absl::Status& status, std::string_view context);

// Converts errno (after a failed system call on `path`) into a Status naming the path.
absl::Status ErrnoToStatus(int error_number, std::string_view what, std::string_view path);

}  // namespace fedjoint::common::base
