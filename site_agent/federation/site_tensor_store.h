// The site's own (site-scoped) tensors, per phase, in two generations tagged with the round that
// trained them:
//
//   STATE/site/<phase>.safetensors            the latest (metadata fedjoint.round = r)
//   STATE/site/<phase>.previous.safetensors   the one before it (an earlier round)
//
// Why two: the latest is written before the update is sent (so a sent update always has its site
// half), but a round can still be trained again — the upload failed, the round was retried, or
// the coordinator died and restarted the round. Training round r again must start from the
// site's state before round r, not stack a second round r on top of the first.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensors/torch_tensors.h"

namespace fedjoint::site_agent {

class SiteTensorStore {
 public:
  explicit SiteTensorStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // The tensors round `round` of `phase` starts from: the newest generation trained in an earlier
  // round. nullopt when there is none (the site's first round of the phase, or a job whose round
  // numbering started over); the caller then starts from freshly initialized tensors.
  absl::StatusOr<std::optional<common::tensors::TensorMap>> ForRound(const std::string& phase,
                                                                     int64_t round) const;

  // Saves the tensors trained in `round` as the latest generation. The generation it replaces
  // becomes the previous one when it is from an earlier round (otherwise it was a try of this
  // same round and is dropped). Each file is written atomically.
  absl::Status Save(const std::string& phase, int64_t round,
                    const common::tensors::TensorMap& tensors);

  // The latest generation (what the site exports and what later phases use).
  std::filesystem::path LatestPath(const std::string& phase) const;
  std::filesystem::path PreviousPath(const std::string& phase) const;

 private:
  // The round a generation was trained in (0 for a file written before rounds were recorded);
  // nullopt when the file does not exist.
  absl::StatusOr<std::optional<int64_t>> RoundOf(const std::filesystem::path& path) const;

  std::filesystem::path dir_;
};

}  // namespace fedjoint::site_agent
