// The server optimizer's state (common/aggregation/strategy.h ServerState) on disk, between a
// phase's rounds: one float32 tensor per shared tensor and moment, named "<tensor>.m" (first
// moment) and "<tensor>.v" (second, FedAdam only). Written atomically before the round commits,
// so a restarted coordinator continues the phase with the moments of its last finished round.
// The file never leaves the coordinator.
#pragma once

#include <filesystem>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/aggregation/strategy.h"

namespace fedjoint::coordinator {

// `names[i]` names state.first[i] (and state.second[i]); shapes are flat.
absl::Status WriteServerState(const std::filesystem::path& path, std::span<const std::string> names,
                              const common::aggregation::ServerState& state);

// The state for the tensors `names`, with `sizes[i]` values each; `second` moments are read when
// `with_second`. Errors name the file: missing, unreadable, a tensor missing or of another size.
absl::StatusOr<common::aggregation::ServerState> ReadServerState(const std::filesystem::path& path,
                                                                 std::span<const std::string> names,
                                                                 std::span<const size_t> sizes,
                                                                 bool with_second);

}  // namespace fedjoint::coordinator
