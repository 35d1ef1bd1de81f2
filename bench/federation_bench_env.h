// Pieces of the federation benchmark (bench/federation_bench.cc): a consortium PKI made on the
// spot, a real coordinator (job + gRPC server with mutual TLS on 127.0.0.1), site clients, a
// do-nothing trainer, a raw gRPC stream server as the ceiling for model downloads, and a TCP
// proxy that counts the bytes a site puts on and takes off the wire.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "coordinator/job/federated_job.h"
#include "coordinator/service/coordinator_server.h"
#include "site_agent/federation/coordinator_client.h"
#include "site_agent/federation/local_trainer.h"

namespace fedjoint::bench {

// Seconds on a monotonic clock.
double Now();
// Peak resident set of this process (VmHWM), in MB. It counts file pages a process maps, too.
double PeakRssMb();

// Samples this process's anonymous resident memory (RssAnon: heap, stacks, buffers — what grows
// with load, unlike mapped files) every 5 ms and keeps the peak.
class AnonRssSampler {
 public:
  AnonRssSampler();
  ~AnonRssSampler();
  double peak_mb() const { return peak_mb_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<double> peak_mb_{0};
  std::thread thread_;
};

// A PKI with a CA, the coordinator's certificates and `sites` site certificates (site-0 ...).
struct Pki {
  static absl::StatusOr<Pki> Create(const std::filesystem::path& dir, int sites);
  std::filesystem::path dir;
  std::shared_ptr<grpc::ServerCredentials> server_credentials;
  std::shared_ptr<common::security::RevocationList> revocations;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(int site) const;
};

std::string SiteName(int site);

// One phase, every tensor global, `params` float32 parameters in 1 Mi-element tensors.
coordinator::InitialModelFn FlatModel(int64_t params);

struct CoordinatorSetup {
  int rounds = 1;
  int sites = 1;  // min_sites = min_updates = sites
  int64_t params = 10'000'000;
  int64_t chunk_bytes = 1 << 20;
  int port = 0;
  // ServerOptions::stream_window_bytes and ServiceOptions::max_concurrent_transfers; -1: defaults.
  int64_t stream_window_bytes = -1;
  int max_transfers = -1;
};

struct Coordinator {
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(const Pki& pki,
                                                            const std::filesystem::path& state,
                                                            const CoordinatorSetup& setup);
  std::unique_ptr<coordinator::FederatedJob> job;
  std::unique_ptr<coordinator::CoordinatorServer> server;
};

std::unique_ptr<site_agent::CoordinatorClient> MakeClient(const Pki& pki, int site, int port,
                                                          int64_t chunk_bytes);

// Returns the model unchanged: the federation's own cost, with no training in it.
class NoopTrainer : public site_agent::LocalTrainer {
 public:
  absl::StatusOr<common::tensors::TensorMap> InitialSiteTensors(const v1::Task&) override {
    return common::tensors::TensorMap{};
  }
  absl::StatusOr<site_agent::TrainResult> Train(site_agent::TrainRequest request) override;
  std::atomic<double> train_seconds{0};
};

// A bare Federation service whose DownloadModel streams `bytes` from memory in `chunk_bytes`
// chunks: no authentication beyond the TLS handshake, no file, no digest. The ceiling a real
// model download over the same transport can reach.
class RawServer {
 public:
  static absl::StatusOr<std::unique_ptr<RawServer>> Start(const Pki& pki, std::string bytes,
                                                          int64_t chunk_bytes);
  ~RawServer();
  int port() const { return port_; }
  const std::string& bytes() const { return bytes_; }
  int64_t chunk_bytes() const { return chunk_bytes_; }

 private:
  class Service;
  std::string bytes_;
  int64_t chunk_bytes_ = 0;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// Downloads everything RawServer streams into one buffer; returns the bytes received.
absl::StatusOr<int64_t> RawDownload(const Pki& pki, int port, std::string* into);

// Forwards TCP connections from 127.0.0.1:port() to 127.0.0.1:target and counts the bytes in
// each direction (TLS records, HTTP/2 framing and all).
class CountingProxy {
 public:
  static absl::StatusOr<std::unique_ptr<CountingProxy>> Start(int target_port);
  ~CountingProxy();
  int port() const { return port_; }
  int64_t up() const { return up_; }      // site -> coordinator
  int64_t down() const { return down_; }  // coordinator -> site

 private:
  void Accept();
  void Pump(int client, int server);
  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> up_{0}, down_{0};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;
};

}  // namespace fedjoint::bench
