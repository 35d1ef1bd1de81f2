// The coordinator's state directory — everything a restarted coordinator needs, written so that
// a kill at any instant loses no finished round and never counts an update twice:
//
//   STATE/rounds/NNNN/global.safetensors   the global model after round NNNN (rounds 1, 2, ...)
//   STATE/rounds/NNNN/global.safetensors.sig   the coordinator's signature over it
//   STATE/rounds/NNNN/server_state.safetensors   the server optimizer's moments after round NNNN
//                       (FedAvgM/FedAdam phases only; coordinator/job/server_state_file.h)
//   STATE/state.json    the commit point: finished rounds, the digest of the latest global model,
//                       the sites seen, and the round log record of the latest finished round
//   STATE/rounds.jsonl  one JSON object per finished round (append-only)
//   STATE/phases/<name>/initial.safetensors (+ .sig)   each phase's starting model (written by
//                       FederatedJob, not by this class)
//
// Finishing round r: write model + signature (atomic files) -> replace state.json (atomic) ->
// append the round's line to rounds.jsonl. A crash before state.json leaves round r unfinished
// (it restarts cleanly; a stray rounds/r folder is overwritten). A crash after it but before the
// append is repaired at the next Open(): state.json carries the record, which is appended if the
// log's last line is an older round. Torn trailing log lines (a kill mid-append) are dropped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/security/model_signing.h"
#include "common/tensors/safetensors.h"

namespace fedjoint::coordinator {

struct SiteRecord {
  std::map<std::string, int64_t> samples_by_joint;
  double last_contact_unix_s = 0;
  int64_t last_round_finished = 0;
};

struct JobState {
  std::string job_id;
  int64_t finished_rounds = 0;  // rounds/finished_rounds holds the latest global model
  std::string global_digest;    // content digest of that model
  std::map<std::string, SiteRecord> sites;
  nlohmann::json last_round_record;  // the rounds.jsonl line of round `finished_rounds`
};

// A global model written by WriteModel: its content digest and the SHA-256 of the file's bytes
// (what its signature covers), both computed from the bytes as they were written.
struct WrittenModel {
  std::string digest;
  common::base::Sha256Digest file_sha256;
};

class CheckpointStore {
 public:
  // Creates the folder layout if needed and repairs a log left behind by a crash (see above).
  static absl::StatusOr<CheckpointStore> Open(const std::filesystem::path& state_dir);
  // For readers such as `status` while a coordinator may be running: creates nothing, repairs
  // nothing (the running coordinator owns the folder). The store must not be written to.
  static absl::StatusOr<CheckpointStore> OpenReadOnly(const std::filesystem::path& state_dir);

  // The saved state, or nullopt for a fresh directory. A state.json that does not parse is an
  // error naming the file (never silently treated as a fresh job).
  absl::StatusOr<std::optional<JobState>> LoadState() const;

  std::filesystem::path ModelPath(int64_t round) const;
  std::filesystem::path ServerStatePath(int64_t round) const;

  // Writes rounds/NNNN/global.safetensors with `metadata` and signs it (the file's SHA-256 is
  // taken from the bytes while they are written, not by reading the file back). Does not commit
  // the round (CommitRound does).
  absl::StatusOr<WrittenModel> WriteModel(int64_t round,
                                          std::span<const common::tensors::TensorRef> tensors,
                                          const common::tensors::Metadata& metadata,
                                          const common::security::ModelSigner& signer);

  // Commits: replaces state.json with `state` (whose last_round_record is the new round's log
  // line), then appends that line to rounds.jsonl.
  absl::Status CommitRound(const JobState& state);
  // Saves state.json without a new round (e.g. sites joined).
  absl::Status SaveState(const JobState& state);

  // Every intact line of rounds.jsonl.
  absl::StatusOr<std::vector<nlohmann::json>> ReadRoundLog() const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit CheckpointStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  absl::Status AppendLogLine(const nlohmann::json& record);
  absl::Status RepairLog();

  std::filesystem::path dir_;
};

// JSON (de)serialization of the state file, exposed for tests and `status`.
nlohmann::json ToJson(const JobState& state);
absl::StatusOr<JobState> JobStateFromJson(const nlohmann::json& json, const std::string& source);

}  // namespace fedjoint::coordinator
