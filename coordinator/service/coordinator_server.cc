#include "coordinator/service/coordinator_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log/logging.h"

namespace fedjoint::coordinator {

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    JobHandler* job, std::shared_ptr<grpc::ServerCredentials> credentials,
    std::shared_ptr<common::security::RevocationList> revocations, ServerOptions options) {
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  server->job_ = job;
  server->service_ = std::make_unique<FederationService>(
      job, CertificateAuthenticator(std::move(revocations)), options.service, server->clock_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, std::move(credentials), &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(int(options.max_message_bytes));
  builder.SetMaxSendMessageSize(int(options.max_message_bytes));
  const int keepalive_ms = int(options.keepalive_s * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, std::max(1000, keepalive_ms / 3));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Sites ping during long local training; allow it at the same cadence.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             std::max(1000, keepalive_ms / 2));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  if (options.stream_window_bytes > 0) {
    builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
                               int(options.stream_window_bytes));
  }
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address,
                                               " (address in use, or not a local address?)"));
  }
  const auto tick = std::chrono::duration<double>(options.tick_s);
  server->ticker_ = std::thread([s = server.get(), tick] {
    while (!s->stopping_) {
      if (absl::Status status = s->job_->Tick(s->clock_()); !status.ok()) {
        common::log::Get("transport")
            ->error("round processing failed: {}", std::string(status.message()));
      }
      s->service_->AnswerPolls();
      s->service_->WaitForTick(tick);
    }
  });
  common::log::Get("transport")
      ->info("listening on {} (port {}), mutual TLS", options.listen_address, server->port_);
  return server;
}

void CoordinatorServer::Wait() {
  if (server_) server_->Wait();
}

void CoordinatorServer::Shutdown() {
  std::lock_guard lock(shutdown_mutex_);
  if (shut_down_) return;
  shut_down_ = true;
  stopping_ = true;
  service_->StopTicks();
  if (ticker_.joinable()) ticker_.join();
  service_->DrainPolls();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

}  // namespace fedjoint::coordinator
