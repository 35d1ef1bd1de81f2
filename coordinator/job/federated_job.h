// The coordinator's job: round orchestration, aggregation and persistence wired together behind
// JobHandler, which knows nothing of gRPC (the transport in coordinator/service converts messages
// and calls it). Thread-safe: every public method takes the job's lock.
//
// Models are addressed by content digest. A task names the digest of the model a round starts
// from (a phase's initial model for its first round, else the previous round's global model) and
// carries its signature; DownloadModel serves any model the job has published by digest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/aggregation/scope_policy.h"
#include "common/aggregation/strategy.h"
#include "common/security/model_signing.h"
#include "common/tensors/safetensors_file.h"
#include "coordinator/job/job_handler.h"
#include "coordinator/job/upload_spool.h"
#include "coordinator/round/orchestrator.h"
#include "coordinator/store/checkpoint_store.h"
#include "fedjoint/v1/config.pb.h"
#include "fedjoint/v1/federation.pb.h"

namespace fedjoint::coordinator {

// A float32 tensor owned in memory (initial models).
struct OwnedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Makes a phase's initial weights (all of them; the job drops site-scoped tensors before anything
// is stored or sent). Production code builds the phase's network; tests pass small fakes.
using InitialModelFn =
    std::function<absl::StatusOr<std::vector<OwnedTensor>>(const fedjoint::v1::PhaseConfig&)>;

struct JobOptions {
  std::string job_id = "fedjoint-job";
  OrchestratorOptions orchestrator;
  // For phases whose PhaseConfig.max_update_norm is 0 (a phase's own bound wins).
  common::aggregation::UpdateLimits update_limits;
  int64_t max_update_bytes = int64_t{2} << 30;
  // Accepted updates are added to the running sum this many at a time, in one pass (their
  // spooled files stay on disk and mapped until then; see ScopedFedAvg).
  int aggregation_batch = 8;
  std::vector<fedjoint::v1::PhaseConfig> phases;
  // Long-poll window of GetTask.
  double task_poll_s = 10;
  double heartbeat_interval_s = 5;
};

// Builds JobOptions from the coordinator's configuration.
JobOptions JobOptionsFromConfig(const fedjoint::v1::CoordinatorConfig& config);

class FederatedJob;

// An update of one site for one round, arriving in chunks into an UploadSpool (bounded by the
// header's total_bytes and the job's max_update_bytes).
class UploadSink final : public UpdateSink {
 public:
  ~UploadSink() override;
  absl::Status Append(int64_t offset, std::string_view bytes) override {
    return spool_->Append(offset, bytes);
  }
  const std::string& site() const { return site_; }

 private:
  friend class FederatedJob;
  UploadSink() = default;

  std::string site_;
  fedjoint::v1::UploadHeader header_;
  int64_t token_ = 0;
  std::unique_ptr<UploadSpool> spool_;
  bool finished_ = false;
  FederatedJob* job_ = nullptr;
};

class FederatedJob final : public JobHandler {
 public:
  static absl::StatusOr<std::unique_ptr<FederatedJob>> Create(
      JobOptions options, const std::filesystem::path& state_dir,
      std::shared_ptr<const common::security::ModelSigner> signer, InitialModelFn initial_model,
      double now_s);

  absl::StatusOr<fedjoint::v1::JoinResponse> Join(const std::string& site,
                                                  const fedjoint::v1::JoinRequest& request,
                                                  double now_s) override;
  absl::StatusOr<fedjoint::v1::Task> TaskFor(const std::string& site, double now_s) override;
  absl::StatusOr<PublishedModel> FindModel(const std::string& digest) const override;
  absl::StatusOr<fedjoint::v1::PhaseModel> LatestModel() const override;

  // The update is spooled to disk (bounded by the header's total_bytes and max_update_bytes).
  absl::StatusOr<std::unique_ptr<UpdateSink>> BeginUpload(const std::string& site,
                                                          const fedjoint::v1::UploadHeader& header,
                                                          double now_s) override;
  absl::StatusOr<std::string> FinishUpload(std::unique_ptr<UpdateSink> sink,
                                           const std::string& sha256_hex, double now_s) override;

  absl::StatusOr<fedjoint::v1::HeartbeatResponse> Heartbeat(
      const std::string& site, const fedjoint::v1::HeartbeatRequest& request,
      double now_s) override;
  absl::Status ReportMetrics(const std::string& site, const fedjoint::v1::MetricsReport& report,
                             double now_s) override;

  // Opens rounds, finalizes them (aggregate -> write + sign -> commit).
  absl::Status Tick(double now_s) override;
  TaskEpoch task_epoch() const override;

  RoundState state() const;
  int64_t finished_rounds() const;
  const std::filesystem::path& state_dir() const { return store_.dir(); }

 private:
  friend class UploadSink;
  FederatedJob(JobOptions options, CheckpointStore store,
               std::shared_ptr<const common::security::ModelSigner> signer,
               InitialModelFn initial_model);

  absl::Status Resume(double now_s);
  const fedjoint::v1::PhaseConfig& PhaseConfigOf(int64_t round) const;
  int64_t FirstRoundOf(const std::string& phase) const;
  absl::StatusOr<PublishedModel> PublishInitialModel(const fedjoint::v1::PhaseConfig& phase);
  // Makes a model servable. `written`: the digests WriteModel computed, when this process wrote
  // it (else the file is verified and hashed).
  absl::StatusOr<PublishedModel> Register(const std::filesystem::path& path,
                                          const WrittenModel* written = nullptr);
  absl::StatusOr<PublishedModel> StartModelOf(int64_t round);
  // Builds the aggregation of the round just opened (at `now_s`).
  absl::Status PrepareRoundLocked(double now_s);
  absl::Status FinalizeLocked(const FinalizeRequest& request, double now_s);
  void AbortUpload(UploadSink* sink);

  mutable std::mutex mutex_;
  JobOptions options_;
  CheckpointStore store_;
  std::shared_ptr<const common::security::ModelSigner> signer_;
  InitialModelFn initial_model_;
  Orchestrator orchestrator_;
  JobState state_;
  std::map<std::string, PublishedModel> models_;      // by digest
  std::map<std::string, std::string> phase_initial_;  // phase -> digest
  std::map<int64_t, std::string> round_model_;        // finished round -> digest

  // The open round.
  int64_t prepared_token_ = -1;
  std::optional<common::tensors::SafetensorsFile> start_model_;
  std::unique_ptr<common::aggregation::RoundAggregation> aggregation_;
  // Accepted updates the aggregator has queued but not yet added (it reads them from these).
  std::vector<common::tensors::SafetensorsFile> pending_updates_;
  // The previous round's accumulators, reused (fresh memory costs page faults).
  std::vector<std::vector<float>> recycled_sums_;
  std::vector<fedjoint::v1::Prototype> published_prototypes_;
  nlohmann::json round_record_;
  double round_opened_s_ = 0;
};

}  // namespace fedjoint::coordinator
