#include "coordinator/store/checkpoint_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/atomic_file.h"
#include "common/base/sha256.h"
#include "common/base/status.h"
#include "common/tensors/safetensors_writer.h"

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr char kStateFile[] = "state.json";
constexpr char kLogFile[] = "rounds.jsonl";

}  // namespace

nlohmann::json ToJson(const JobState& state) {
  nlohmann::json sites = nlohmann::json::object();
  for (const auto& [name, s] : state.sites) {
    sites[name] = {{"samples_by_joint", s.samples_by_joint},
                   {"last_contact_unix_s", s.last_contact_unix_s},
                   {"last_round_finished", s.last_round_finished}};
  }
  return {{"format", "fedjoint-coordinator-state"},
          {"version", 1},
          {"job_id", state.job_id},
          {"finished_rounds", state.finished_rounds},
          {"global_digest", state.global_digest},
          {"sites", sites},
          {"last_round_record", state.last_round_record}};
}

absl::StatusOr<JobState> JobStateFromJson(const nlohmann::json& json, const std::string& source) {
  try {
    if (json.value("format", "") != "fedjoint-coordinator-state" || json.value("version", 0) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": not a fedjoint coordinator state file (format/version)"));
    }
    JobState state;
    state.job_id = json.at("job_id").get<std::string>();
    state.finished_rounds = json.at("finished_rounds").get<int64_t>();
    state.global_digest = json.at("global_digest").get<std::string>();
    if (state.finished_rounds < 0) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": finished_rounds is negative"));
    }
    for (const auto& [name, s] : json.at("sites").items()) {
      SiteRecord r;
      r.samples_by_joint = s.at("samples_by_joint").get<std::map<std::string, int64_t>>();
      r.last_contact_unix_s = s.at("last_contact_unix_s").get<double>();
      r.last_round_finished = s.at("last_round_finished").get<int64_t>();
      state.sites[name] = std::move(r);
    }
    state.last_round_record = json.value("last_round_record", nlohmann::json());
    return state;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
}

absl::StatusOr<CheckpointStore> CheckpointStore::Open(const fs::path& state_dir) {
  std::error_code ec;
  fs::create_directories(state_dir / "rounds", ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(state_dir.string(), ": cannot create state folder: ", ec.message()));
  }
  CheckpointStore store(state_dir);
  if (absl::Status s = store.RepairLog(); !s.ok()) return s;
  return store;
}

absl::StatusOr<CheckpointStore> CheckpointStore::OpenReadOnly(const fs::path& state_dir) {
  if (!fs::is_directory(state_dir)) {
    return absl::NotFoundError(absl::StrCat(state_dir.string(), ": no such state folder"));
  }
  return CheckpointStore(state_dir);
}

fs::path CheckpointStore::ModelPath(int64_t round) const {
  return dir_ / "rounds" / absl::StrFormat("%04d", round) / "global.safetensors";
}

fs::path CheckpointStore::ServerStatePath(int64_t round) const {
  return ModelPath(round).parent_path() / "server_state.safetensors";
}

absl::StatusOr<std::optional<JobState>> CheckpointStore::LoadState() const {
  const fs::path path = dir_ / kStateFile;
  if (!fs::exists(path)) return std::optional<JobState>();
  auto text = common::base::ReadSmallFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::DataLossError(absl::StrCat(path.string(), ": not valid JSON"));
  }
  auto state = JobStateFromJson(json, path.string());
  if (!state.ok()) return state.status();
  if (state->finished_rounds > 0 && !fs::exists(ModelPath(state->finished_rounds))) {
    return absl::DataLossError(
        absl::StrCat(path.string(), ": says round ", state->finished_rounds, " is finished but ",
                     ModelPath(state->finished_rounds).string(), " is missing"));
  }
  return std::optional<JobState>(std::move(*state));
}

absl::StatusOr<WrittenModel> CheckpointStore::WriteModel(
    int64_t round, std::span<const common::tensors::TensorRef> tensors,
    const common::tensors::Metadata& metadata, const common::security::ModelSigner& signer) {
  const fs::path path = ModelPath(round);
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(path.parent_path().string(), ": cannot create folder: ", ec.message()));
  }
  auto encoding = common::tensors::EncodeSafetensors(tensors, metadata);
  if (!encoding.ok()) return encoding.status();
  common::base::Sha256Hasher sha;
  {
    auto writer = common::base::AtomicFileWriter::Open(path);
    if (!writer.ok()) return writer.status();
    sha.Update(encoding->header);
    if (auto s = writer->Write(encoding->header); !s.ok()) return s;
    for (const auto& segment : encoding->segments) {
      sha.Update(segment.data(), segment.size());
      if (auto s = writer->Write(segment); !s.ok()) return s;
    }
    if (auto s = writer->Commit(); !s.ok()) return s;
  }
  auto file_sha256 = sha.Finish();
  if (!file_sha256.ok()) return file_sha256.status();
  WrittenModel written{encoding->digest, *file_sha256};
  auto signature = signer.SignDigest(written.file_sha256);
  if (!signature.ok()) return signature.status();
  if (auto s =
          common::base::WriteFileAtomically(common::security::SignaturePathFor(path), *signature);
      !s.ok()) {
    return s;
  }
  return written;
}

absl::Status CheckpointStore::SaveState(const JobState& state) {
  return common::base::WriteFileAtomically(dir_ / kStateFile, ToJson(state).dump(2) + "\n");
}

absl::Status CheckpointStore::CommitRound(const JobState& state) {
  if (absl::Status s = SaveState(state); !s.ok()) return s;
  return AppendLogLine(state.last_round_record);
}

absl::Status CheckpointStore::AppendLogLine(const nlohmann::json& record) {
  const fs::path path = dir_ / kLogFile;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return common::base::ErrnoToStatus(errno, "cannot open", path.string());
  std::string line = record.dump() + "\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      return common::base::ErrnoToStatus(saved, "append failed", path.string());
    }
    p += n;
    left -= size_t(n);
  }
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) return common::base::ErrnoToStatus(saved, "fsync failed", path.string());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<nlohmann::json>> CheckpointStore::ReadRoundLog() const {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir_ / kLogFile);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) continue;  // a torn line from a kill mid-append
    lines.push_back(std::move(json));
  }
  return lines;
}

absl::Status CheckpointStore::RepairLog() {
  auto state = LoadState();
  if (!state.ok()) return state.status();
  if (!state->has_value()) return absl::OkStatus();
  const nlohmann::json& record = (*state)->last_round_record;
  if (!record.is_object() || !record.contains("round")) return absl::OkStatus();
  auto log = ReadRoundLog();
  if (!log.ok()) return log.status();
  int64_t last_logged = 0;
  for (const auto& line : *log)
    last_logged = std::max(last_logged, line.value("round", int64_t{0}));
  // Rewrite the log without a torn tail so the next append starts on a fresh line.
  const fs::path path = dir_ / kLogFile;
  std::string clean;
  for (const auto& line : *log) clean += line.dump() + "\n";
  if (fs::exists(path) && fs::file_size(path) != clean.size()) {
    if (auto s = common::base::WriteFileAtomically(path, clean); !s.ok()) return s;
  }
  if (last_logged < record.at("round").get<int64_t>()) return AppendLogLine(record);
  return absl::OkStatus();
}

}  // namespace fedjoint::coordinator
