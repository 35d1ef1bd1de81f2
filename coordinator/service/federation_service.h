// The coordinator's gRPC transport: authenticates every call (the site's identity comes from its
// verified client certificate, checked against the revocation list, and must match the site the
// request names), converts messages, and hands off to a JobHandler. Nothing here decides rounds,
// does math or owns the clock: the runner (CoordinatorServer) drives the job and tells the service
// when to answer waiting polls.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/security/revocation_list.h"
#include "coordinator/job/job_handler.h"
#include "fedjoint/v1/federation.grpc.pb.h"

namespace fedjoint::coordinator {

struct ServiceOptions {
  int64_t chunk_bytes = 1 << 20;
  // Long-poll window of GetTask.
  double task_poll_s = 10;
  // Model downloads and update uploads streaming at the same time (0 = no limit). Each one holds
  // chunk and gRPC stream buffers (several MB); the others wait for a free slot with their
  // streams idle, so the coordinator's memory does not grow with the number of sites. Throughput
  // does not suffer as long as the slots keep the coordinator's cores busy.
  int max_concurrent_transfers = 4;
};

// Bounds how many transfers stream at the same time. A transfer that finds no free slot waits in
// line (first come, first served) and is called back when one frees up.
class TransferSlots {
 public:
  class Waiter {
   public:
    // Called (once, from the thread releasing a slot) when the waiter holds a slot.
    virtual void Granted() = 0;

   protected:
    ~Waiter() = default;
  };

  explicit TransferSlots(int max) : free_(max), unlimited_(max <= 0) {}
  // True: the caller holds a slot now. False: `waiter` is queued and Granted() comes later.
  bool Acquire(Waiter* waiter);
  // Takes a queued waiter out of line; false when it is not queued (its Granted() has come or is
  // coming).
  bool Cancel(Waiter* waiter);
  // Gives a held slot to the first waiter, or frees it.
  void Release();

  int waiting() const;

 private:
  mutable std::mutex mutex_;
  int free_;
  const bool unlimited_;
  std::list<Waiter*> waiting_;
};

// The site a call comes from, or why it cannot be told. Production: CertificateAuthenticator.
using PeerAuthenticator =
    std::function<absl::StatusOr<std::string>(grpc::CallbackServerContext* context)>;

// The site named by the connection's verified client certificate, refused when revoked.
PeerAuthenticator CertificateAuthenticator(
    std::shared_ptr<common::security::RevocationList> revocations);

class FederationService final : public fedjoint::v1::Federation::CallbackService {
 public:
  FederationService(JobHandler* job, PeerAuthenticator authenticate, ServiceOptions options,
                    Clock clock = SystemClockSeconds);
  ~FederationService() override;

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* context,
                                 const fedjoint::v1::JoinRequest* request,
                                 fedjoint::v1::JoinResponse* response) override;
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const fedjoint::v1::TaskRequest* request,
                                    fedjoint::v1::Task* response) override;
  grpc::ServerWriteReactor<fedjoint::v1::Chunk>* DownloadModel(
      grpc::CallbackServerContext* context, const fedjoint::v1::DownloadRequest* request) override;
  grpc::ServerReadReactor<fedjoint::v1::UploadMessage>* UploadUpdate(
      grpc::CallbackServerContext* context, fedjoint::v1::UploadResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const fedjoint::v1::HeartbeatRequest* request,
                                      fedjoint::v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* LatestModel(grpc::CallbackServerContext* context,
                                        const fedjoint::v1::LatestModelRequest* request,
                                        fedjoint::v1::PhaseModel* response) override;
  grpc::ServerUnaryReactor* ReportMetrics(grpc::CallbackServerContext* context,
                                          const fedjoint::v1::MetricsReport* request,
                                          fedjoint::v1::MetricsResponse* response) override;

  // Answers the long polls whose task is ready or whose window ended. The runner calls it after
  // each JobHandler::Tick.
  void AnswerPolls();
  // Answers every pending long poll (UNAVAILABLE) so the server can shut down.
  void DrainPolls();
  // Long polls waiting for a task.
  size_t waiting_polls();

  // The ticker waits here between ticks: up to `timeout`, or until something happened that may
  // close the round (an accepted update), so that the next round opens without waiting for the
  // tick. Stop() ends every wait.
  void WaitForTick(std::chrono::duration<double> timeout);
  void RequestTick();
  void StopTicks();

  // The authenticated site behind `context`, which must be `claimed` (when non-empty).
  absl::StatusOr<std::string> Authenticate(grpc::CallbackServerContext* context,
                                           const std::string& claimed);
  double Now() const { return clock_(); }

 private:
  class TaskPoll;
  class Download;
  class Upload;

  JobHandler* job_;
  PeerAuthenticator authenticate_;
  ServiceOptions options_;
  Clock clock_;
  std::mutex polls_mutex_;
  std::list<TaskPoll*> polls_;
  bool draining_ = false;
  TransferSlots transfer_slots_;
  std::mutex tick_mutex_;
  std::condition_variable tick_cv_;
  bool tick_requested_ = false;
  bool ticks_stopped_ = false;
};

// Converts an absl::Status to a grpc::Status (the codes are the same).
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace fedjoint::coordinator
