// The site's side of the wire contract: one method per RPC, each with a deadline, retries only
// where they are safe (UNAVAILABLE / DEADLINE_EXCEEDED, capped exponential backoff with jitter),
// and streams whose deadline follows progress: a transfer may take as long as it keeps moving,
// and is cancelled when it stalls.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/security/model_signing.h"
#include "common/tensors/safetensors_writer.h"
#include "fedjoint/v1/federation.grpc.pb.h"

namespace fedjoint::site_agent {

struct ClientOptions {
  std::string site;
  std::string target;  // host:port of the coordinator
  int64_t max_message_bytes = 4 << 20;
  int64_t chunk_bytes = 1 << 20;
  double keepalive_s = 30;
  double unary_timeout_s = 30;
  double task_poll_s = 10;      // the coordinator's long-poll window
  double stall_timeout_s = 60;  // a transfer with no progress for this long is cancelled
  // Backoff for Join and for retrying UNAVAILABLE calls.
  double backoff_initial_s = 0.2;
  double backoff_max_s = 30;
  int max_attempts = 0;  // 0 = retry forever (Join), tests bound it
  // Cap of the channel's own reconnect backoff. gRPC's default (120 s) would leave a site idle
  // for up to two minutes after a coordinator restart; rounds have deadlines, so reconnect sooner.
  double reconnect_backoff_max_s = 10;
};

class CoordinatorClient {
 public:
  // A mutual-TLS channel to options.target.
  CoordinatorClient(ClientOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials);
  // Over a channel the caller made (tests: an in-process channel to a fake coordinator).
  CoordinatorClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // Retries with capped exponential backoff and jitter until the coordinator answers (or
  // max_attempts). Errors other than UNAVAILABLE/DEADLINE_EXCEEDED end it at once.
  absl::StatusOr<fedjoint::v1::JoinResponse> Join(const fedjoint::v1::JoinRequest& request);
  absl::StatusOr<fedjoint::v1::Task> GetTask(const std::string& session_id, int64_t last_round);
  // Downloads the model with `digest` into `out` (atomically, without fsync: `out` is a cache
  // its user verifies), checking offsets, size and the transfer SHA-256, which it returns — the
  // SHA-256 of the file's bytes, so the caller checks the signature without hashing them again.
  // The caller verifies the signature and the content digest.
  absl::StatusOr<common::base::Sha256Digest> DownloadModel(const std::string& session_id,
                                                           int64_t round, const std::string& digest,
                                                           int64_t expected_bytes,
                                                           const std::filesystem::path& out);
  // Streams an encoded update (header, chunks, trailer with the SHA-256 of all bytes).
  absl::StatusOr<fedjoint::v1::UploadResponse> UploadUpdate(
      fedjoint::v1::UploadHeader header, const common::tensors::SafetensorsEncoding& encoding);
  absl::StatusOr<fedjoint::v1::HeartbeatResponse> Heartbeat(const fedjoint::v1::HeartbeatRequest&);
  absl::Status ReportMetrics(const fedjoint::v1::MetricsReport& report);
  absl::StatusOr<fedjoint::v1::PhaseModel> LatestModel();

  const ClientOptions& options() const { return options_; }
  // The next backoff delay (exposed for tests): min(max, initial * 2^attempt) * jitter[0.5, 1].
  double BackoffSeconds(int attempt);

 private:
  std::chrono::system_clock::time_point Deadline(double seconds) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<fedjoint::v1::Federation::Stub> stub_;
  std::mt19937_64 rng_;
};

absl::Status FromGrpc(const grpc::Status& status, const std::string& what);

}  // namespace fedjoint::site_agent
