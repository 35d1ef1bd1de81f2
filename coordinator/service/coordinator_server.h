// The coordinator's runner: owns the gRPC server (binds the port; port 0 picks a free one, read
// back with port()), sets explicit message-size limits and keepalive, owns the clock and the
// ticker that advances the job's rounds and then has the service answer long polls, and shuts
// down cleanly (Shutdown() is safe to call twice).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "coordinator/service/federation_service.h"

namespace fedjoint::coordinator {

struct ServerOptions {
  std::string listen_address = "0.0.0.0:50051";
  int64_t max_message_bytes = 4 << 20;
  double keepalive_s = 30;
  double tick_s = 0.05;
  // HTTP/2 receive window per stream that the coordinator announces (0 = gRPC's default, which
  // grows it with its bandwidth-delay estimate to several MB per stream). Bounds what an upload
  // that waits for a transfer slot can have sent into the coordinator's buffers.
  int64_t stream_window_bytes = 256 << 10;
  ServiceOptions service;
};

class CoordinatorServer {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      JobHandler* job, std::shared_ptr<grpc::ServerCredentials> credentials,
      std::shared_ptr<common::security::RevocationList> revocations, ServerOptions options);
  ~CoordinatorServer();

  int port() const { return port_; }
  // Blocks until Shutdown() is called from another thread (or a signal handler's helper).
  void Wait();
  void Shutdown();

 private:
  CoordinatorServer() = default;

  JobHandler* job_ = nullptr;
  Clock clock_ = SystemClockSeconds;
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::thread ticker_;
  std::atomic<bool> stopping_{false};
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
  int port_ = 0;
};

}  // namespace fedjoint::coordinator
