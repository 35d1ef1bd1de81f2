// What the coordinator's transport calls: the job behind an interface that knows nothing of gRPC,
// so the transport can be tested against a fake job and the job without a network. Every method
// takes the time from its caller; the runner that drives the job (CoordinatorServer, or a test)
// owns the clock.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedjoint/v1/federation.pb.h"

namespace fedjoint::coordinator {

// Seconds since the Unix epoch. The production clock is SystemClockSeconds; tests pass their own.
using Clock = std::function<double()>;
double SystemClockSeconds();

// A model the job can serve: its file, digest and signature (the .sig file's text).
struct PublishedModel {
  std::filesystem::path path;
  std::string digest;       // content digest (names the model)
  std::string file_sha256;  // SHA-256 of the file's bytes (covers a transfer)
  std::string signature;
  int64_t size = 0;
};

// Changes whenever the task of a site that was told to WAIT may have changed (a round opened,
// closed, was retried; the job finished or failed).
using TaskEpoch = std::tuple<int, int64_t, int64_t>;  // state, round token, finished rounds

// One site's update for one round, arriving in chunks. Dropped unfinished, it gives the site's
// upload slot of the round back.
class UpdateSink {
 public:
  virtual ~UpdateSink() = default;
  virtual absl::Status Append(int64_t offset, std::string_view bytes) = 0;
};

class JobHandler {
 public:
  virtual ~JobHandler() = default;

  virtual absl::StatusOr<fedjoint::v1::JoinResponse> Join(const std::string& site,
                                                          const fedjoint::v1::JoinRequest& request,
                                                          double now_s) = 0;
  // The task for `site` now (kind WAIT when there is none yet).
  virtual absl::StatusOr<fedjoint::v1::Task> TaskFor(const std::string& site, double now_s) = 0;
  virtual absl::StatusOr<PublishedModel> FindModel(const std::string& digest) const = 0;
  // The latest finished round's global model (NotFound before the first round finishes).
  virtual absl::StatusOr<fedjoint::v1::PhaseModel> LatestModel() const = 0;

  // `site` is the authenticated sender (the header's claim has been checked against it).
  virtual absl::StatusOr<std::unique_ptr<UpdateSink>> BeginUpload(
      const std::string& site, const fedjoint::v1::UploadHeader& header, double now_s) = 0;
  // Checks the transfer digest, validates and aggregates the update (a sink of this job's
  // BeginUpload). Returns the content digest of the accepted update.
  virtual absl::StatusOr<std::string> FinishUpload(std::unique_ptr<UpdateSink> sink,
                                                   const std::string& sha256_hex, double now_s) = 0;

  virtual absl::StatusOr<fedjoint::v1::HeartbeatResponse> Heartbeat(
      const std::string& site, const fedjoint::v1::HeartbeatRequest& request, double now_s) = 0;
  virtual absl::Status ReportMetrics(const std::string& site,
                                     const fedjoint::v1::MetricsReport& report, double now_s) = 0;

  // Advances time: opens rounds, finalizes them.
  virtual absl::Status Tick(double now_s) = 0;
  virtual TaskEpoch task_epoch() const = 0;
};

}  // namespace fedjoint::coordinator
