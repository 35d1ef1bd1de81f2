#include "bench/federation_bench_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/security/pki.h"
#include "common/security/revocation_list.h"
#include "common/security/tls_credentials.h"
#include "fedjoint/v1/federation.grpc.pb.h"

namespace fedjoint::bench {

namespace fs = std::filesystem;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double PeakRssMb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  }
  return -1;
}

namespace {
double StatusFieldMb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size())) / 1024.0;  // kB
  }
  return -1;
}
}  // namespace

AnonRssSampler::AnonRssSampler()
    : thread_([this] {
        while (!stop_) {
          peak_mb_ = std::max(peak_mb_.load(), StatusFieldMb("RssAnon"));
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }) {}

AnonRssSampler::~AnonRssSampler() {
  stop_ = true;
  thread_.join();
}

std::string SiteName(int site) { return absl::StrCat("site-", site); }

absl::StatusOr<Pki> Pki::Create(const fs::path& dir, int sites) {
  Pki pki;
  pki.dir = dir;
  if (auto s = common::security::InitPki(dir, {}); !s.ok()) return s;
  for (int i = 0; i < sites; ++i) {
    const std::string name = SiteName(i);
    auto request = common::security::CreateSiteRequest(name, dir / "sites" / name);
    if (!request.ok()) return request.status();
    auto issued = common::security::SignSiteRequest(dir, request->csr);
    if (!issued.ok()) return issued.status();
    fs::copy_file(dir / issued->file, dir / "sites" / name / (name + ".crt"));
  }
  auto revocations = common::security::RevocationList::Load(dir / "crl.pem", dir / "ca.crt");
  if (!revocations.ok()) return revocations.status();
  pki.revocations = *revocations;
  auto credentials = common::security::LoadServerCredentials(dir / "ca.crt", dir / "server.crt",
                                                             dir / "server.key", pki.revocations);
  if (!credentials.ok()) return credentials.status();
  pki.server_credentials = *credentials;
  return pki;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Pki::ClientCredentials(int site) const {
  const std::string name = SiteName(site);
  const fs::path folder = dir / "sites" / name;
  return common::security::LoadClientCredentials(dir / "ca.crt", folder / (name + ".crt"),
                                                 folder / (name + ".key"));
}

coordinator::InitialModelFn FlatModel(int64_t params) {
  return [params](const v1::PhaseConfig&) -> absl::StatusOr<std::vector<coordinator::OwnedTensor>> {
    constexpr int64_t kTensor = 1 << 20;
    std::vector<coordinator::OwnedTensor> model;
    uint32_t state = 12345;
    for (int64_t done = 0, i = 0; done < params; ++i) {
      const int64_t n = std::min(kTensor, params - done);
      coordinator::OwnedTensor t{absl::StrCat("encoder.layer", i, ".weight"), {n}, {}};
      t.values.resize(size_t(n));
      for (float& v : t.values) {
        state = state * 1664525u + 1013904223u;  // cheap LCG: incompressible, finite values
        v = float(int32_t(state >> 8)) * 1e-7f;
      }
      model.push_back(std::move(t));
      done += n;
    }
    return model;
  };
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const Pki& pki,
                                                                const fs::path& state,
                                                                const CoordinatorSetup& setup) {
  coordinator::JobOptions options;
  options.job_id = "bench";
  options.orchestrator.min_sites = setup.sites;
  options.orchestrator.min_updates = setup.sites;
  options.orchestrator.round_deadline_s = 600;
  options.max_update_bytes = int64_t{8} << 30;
  v1::PhaseConfig phase;
  phase.set_name("segmentation");
  phase.set_rounds(setup.rounds);
  auto* joint = phase.mutable_model()->add_joints();
  joint->set_name("knee");
  joint->add_structures("bone");
  auto* rule = phase.add_scopes();
  rule->set_pattern("*");
  rule->set_scope("global");
  options.phases = {phase};
  auto signer =
      common::security::ModelSigner::Load(pki.dir / "signing.key", pki.dir / "signing.crt");
  if (!signer.ok()) return signer.status();
  auto c = std::make_unique<Coordinator>();
  auto job = coordinator::FederatedJob::Create(
      options, state, std::make_shared<common::security::ModelSigner>(std::move(*signer)),
      FlatModel(setup.params), coordinator::SystemClockSeconds());
  if (!job.ok()) return job.status();
  c->job = std::move(*job);
  coordinator::ServerOptions server_options;
  server_options.listen_address = absl::StrCat("127.0.0.1:", setup.port);
  server_options.max_message_bytes = std::max<int64_t>(4 << 20, setup.chunk_bytes * 2);
  server_options.service.chunk_bytes = setup.chunk_bytes;
  server_options.service.task_poll_s = 1;
  server_options.tick_s = 0.01;
  if (setup.stream_window_bytes >= 0)
    server_options.stream_window_bytes = setup.stream_window_bytes;
  if (setup.max_transfers >= 0)
    server_options.service.max_concurrent_transfers = setup.max_transfers;
  auto server = coordinator::CoordinatorServer::Start(c->job.get(), pki.server_credentials,
                                                      pki.revocations, server_options);
  if (!server.ok()) return server.status();
  c->server = std::move(*server);
  return c;
}

std::unique_ptr<site_agent::CoordinatorClient> MakeClient(const Pki& pki, int site, int port,
                                                          int64_t chunk_bytes) {
  auto credentials = pki.ClientCredentials(site);
  if (!credentials.ok()) return nullptr;
  site_agent::ClientOptions options;
  options.site = SiteName(site);
  options.target = absl::StrCat("127.0.0.1:", port);
  options.chunk_bytes = chunk_bytes;
  options.max_message_bytes = std::max<int64_t>(4 << 20, chunk_bytes * 2);
  options.task_poll_s = 1;
  options.backoff_initial_s = 0.05;
  return std::make_unique<site_agent::CoordinatorClient>(options, *credentials);
}

absl::StatusOr<site_agent::TrainResult> NoopTrainer::Train(site_agent::TrainRequest request) {
  const double start = Now();
  site_agent::TrainResult result;
  result.weights = std::move(request.weights);
  result.num_samples = 1;
  train_seconds = train_seconds + (Now() - start);
  return result;
}

// ------------------------------------------------------------------------------------ RawServer

class RawServer::Service final : public v1::Federation::CallbackService {
 public:
  explicit Service(const RawServer* owner) : owner_(owner) {}

  grpc::ServerWriteReactor<v1::Chunk>* DownloadModel(grpc::CallbackServerContext*,
                                                     const v1::DownloadRequest*) override {
    class Writer final : public grpc::ServerWriteReactor<v1::Chunk> {
     public:
      explicit Writer(const RawServer* owner) : owner_(owner) { Next(); }
      void OnWriteDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        Next();
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        const std::string& bytes = owner_->bytes();
        if (offset_ >= int64_t(bytes.size())) return Finish(grpc::Status::OK);
        const int64_t n = std::min<int64_t>(owner_->chunk_bytes(), int64_t(bytes.size()) - offset_);
        chunk_.set_offset(offset_);
        chunk_.set_data(bytes.data() + offset_, size_t(n));
        offset_ += n;
        StartWrite(&chunk_);
      }
      const RawServer* owner_;
      int64_t offset_ = 0;
      v1::Chunk chunk_;
    };
    return new Writer(owner_);
  }

 private:
  const RawServer* owner_;
};

absl::StatusOr<std::unique_ptr<RawServer>> RawServer::Start(const Pki& pki, std::string bytes,
                                                            int64_t chunk_bytes) {
  std::unique_ptr<RawServer> raw(new RawServer());
  raw->bytes_ = std::move(bytes);
  raw->chunk_bytes_ = chunk_bytes;
  raw->service_ = std::make_unique<Service>(raw.get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", pki.server_credentials, &raw->port_);
  builder.RegisterService(raw->service_.get());
  builder.SetMaxSendMessageSize(int(std::max<int64_t>(4 << 20, chunk_bytes * 2)));
  raw->server_ = builder.BuildAndStart();
  if (!raw->server_ || raw->port_ == 0) return absl::UnavailableError("raw server did not start");
  return raw;
}

RawServer::~RawServer() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

absl::StatusOr<int64_t> RawDownload(const Pki& pki, int port, std::string* into) {
  // One channel per process and port, like a site's: the handshake is not part of a transfer.
  static std::map<int, std::unique_ptr<v1::Federation::Stub>> stubs;
  auto& stub = stubs[port];
  if (!stub) {
    auto credentials = pki.ClientCredentials(0);
    if (!credentials.ok()) return credentials.status();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    stub = v1::Federation::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), *credentials, args));
  }
  grpc::ClientContext context;
  v1::DownloadRequest request;
  auto reader = stub->DownloadModel(&context, request);
  v1::Chunk chunk;
  int64_t received = 0;
  while (reader->Read(&chunk)) {
    if (chunk.offset() != received ||
        received + int64_t(chunk.data().size()) > int64_t(into->size())) {
      return absl::DataLossError("raw download: unexpected chunk");
    }
    std::memcpy(into->data() + received, chunk.data().data(), chunk.data().size());
    received += int64_t(chunk.data().size());
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return received;
}

// -------------------------------------------------------------------------------- CountingProxy

absl::StatusOr<std::unique_ptr<CountingProxy>> CountingProxy::Start(int target_port) {
  std::unique_ptr<CountingProxy> proxy(new CountingProxy());
  proxy->target_port_ = target_port;
  proxy->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (proxy->listen_fd_ < 0 ||
      ::bind(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(proxy->listen_fd_, 16) != 0 ||
      ::getsockname(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::UnavailableError(absl::StrCat("proxy: ", std::strerror(errno)));
  }
  proxy->port_ = ntohs(addr.sin_port);
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->Accept(); });
  return proxy;
}

void CountingProxy::Accept() {
  while (!stop_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(uint16_t(target_port_));
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(client);
      ::close(server);
      continue;
    }
    int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pumps_.emplace_back([this, client, server] { Pump(client, server); });
  }
}

void CountingProxy::Pump(int client, int server) {
  std::vector<char> buffer(1 << 18);
  pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
  while (!stop_) {
    if (::poll(fds, 2, 50) <= 0) continue;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buffer.data(), buffer.size());
      if (n <= 0) {
        closed = true;
        break;
      }
      (i == 0 ? up_ : down_) += n;
      const int to = i == 0 ? server : client;
      for (ssize_t sent = 0; sent < n;) {
        ssize_t w = ::write(to, buffer.data() + sent, size_t(n - sent));
        if (w <= 0) {
          closed = true;
          break;
        }
        sent += w;
      }
    }
    if (closed) break;
  }
  ::close(client);
  ::close(server);
}

CountingProxy::~CountingProxy() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : pumps_) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

}  // namespace fedjoint::bench
