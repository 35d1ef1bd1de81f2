#include "site_agent/federation/site_tensor_store.h"

#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/tensors/safetensors_file.h"

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;
constexpr char kRoundKey[] = "fedjoint.round";

}  // namespace

fs::path SiteTensorStore::LatestPath(const std::string& phase) const {
  return dir_ / (phase + ".safetensors");
}

fs::path SiteTensorStore::PreviousPath(const std::string& phase) const {
  return dir_ / (phase + ".previous.safetensors");
}

absl::StatusOr<std::optional<int64_t>> SiteTensorStore::RoundOf(const fs::path& path) const {
  if (!fs::exists(path)) return std::optional<int64_t>();
  auto file = common::tensors::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  auto it = file->metadata().find(kRoundKey);
  if (it == file->metadata().end()) return std::optional<int64_t>(0);
  int64_t round = 0;
  if (!absl::SimpleAtoi(it->second, &round) || round < 0) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": metadata ", kRoundKey, " is '",
                                                   it->second, "', expected a round number"));
  }
  return std::optional<int64_t>(round);
}

absl::StatusOr<std::optional<common::tensors::TensorMap>> SiteTensorStore::ForRound(
    const std::string& phase, int64_t round) const {
  std::optional<fs::path> best;
  int64_t best_round = -1;
  for (const fs::path& path : {LatestPath(phase), PreviousPath(phase)}) {
    auto trained_in = RoundOf(path);
    if (!trained_in.ok()) return trained_in.status();
    if (trained_in->has_value() && **trained_in<round&&* * trained_in> best_round) {
      best = path;
      best_round = **trained_in;
    }
  }
  if (!best) return std::optional<common::tensors::TensorMap>();
  auto tensors = common::tensors::LoadSafetensors(*best);
  if (!tensors.ok()) return tensors.status();
  return std::optional<common::tensors::TensorMap>(std::move(*tensors));
}

absl::Status SiteTensorStore::Save(const std::string& phase, int64_t round,
                                   const common::tensors::TensorMap& tensors) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(dir_.string(), ": cannot create folder: ", ec.message()));
  }
  const fs::path latest = LatestPath(phase);
  auto latest_round = RoundOf(latest);
  if (!latest_round.ok()) return latest_round.status();
  if (latest_round->has_value() && **latest_round < round) {
    // rename() is atomic: a crash leaves either the old latest or it as the previous generation,
    // and ForRound finds the right one in both cases.
    fs::rename(latest, PreviousPath(phase), ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot keep ", latest.string(), " as ",
                                              PreviousPath(phase).string(), ": ", ec.message()));
    }
  }
  return common::tensors::WriteSafetensors(
      latest, tensors, {{kRoundKey, std::to_string(round)}, {"fedjoint.phase", phase}});
}

}  // namespace fedjoint::site_agent
