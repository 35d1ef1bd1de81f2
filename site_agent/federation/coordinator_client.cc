#include "site_agent/federation/coordinator_client.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/atomic_file.h"
#include "common/base/sha256.h"
#include "common/log/logging.h"
#include "site_agent/federation/hashing_file_sink.h"

namespace fedjoint::site_agent {
namespace {

std::shared_ptr<spdlog::logger> Log() { return common::log::Get("site"); }

// Cancels a call when it makes no progress for `stall` (the stream's deadline follows progress).
class StallWatchdog {
 public:
  StallWatchdog(grpc::ClientContext* context, std::chrono::duration<double> stall)
      : context_(context), stall_(stall), last_(Clock::now()), thread_([this] { Run(); }) {}
  ~StallWatchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Progress() {
    std::lock_guard lock(mutex_);
    last_ = Clock::now();
  }
  bool fired() const { return fired_; }

 private:
  using Clock = std::chrono::steady_clock;
  void Run() {
    std::unique_lock lock(mutex_);
    while (!done_) {
      auto until = last_ + std::chrono::duration_cast<Clock::duration>(stall_);
      if (Clock::now() >= until) {
        fired_ = true;
        context_->TryCancel();
        return;
      }
      cv_.wait_until(lock, until);
    }
  }
  grpc::ClientContext* context_;
  std::chrono::duration<double> stall_;
  std::mutex mutex_;
  std::condition_variable cv_;
  Clock::time_point last_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// Why a connection attempt failed, as far as gRPC 1.51's message tells. It reports every failure
// to connect as UNAVAILABLE, an outage ("Connection refused") and a TLS refusal alike; retrying
// helps only the first.
enum class ConnectFailure {
  kOther,
  // This side refused the handshake: "Ssl handshake failed: SSL_ERROR_SSL: ... certificate verify
  // failed" (coordinator certificate not from our CA, expired), "Peer name X is not in peer
  // certificate" (wrong host name).
  kTlsRefused,
  // The coordinator hung up during the handshake: "failed to connect to all addresses; ...
  // Socket closed". With TLS 1.3 this is all the client learns when the coordinator refuses its
  // certificate (revoked, another CA): the server's alert comes after the client's part of the
  // handshake and gRPC reports only the closed socket. An outage reads "Connection refused".
  kClosedDuringHandshake,
};

ConnectFailure ClassifyConnectFailure(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return ConnectFailure::kOther;
  std::string message = status.error_message();
  std::transform(message.begin(), message.end(), message.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  // Not a bare "handshake": "tcp handshaker shutdown" is a cancelled plain TCP connect.
  for (const char* marker :
       {"ssl handshake failed", "handshake failed", "ssl_error", "certificate verify failed",
        "certificate_verify_failed", "not in peer certificate", "alert"}) {
    if (message.find(marker) != std::string::npos) return ConnectFailure::kTlsRefused;
  }
  if (message.find("failed to connect to all addresses") != std::string::npos &&
      message.find("socket closed") != std::string::npos) {
    return ConnectFailure::kClosedDuringHandshake;
  }
  return ConnectFailure::kOther;
}

// How many connection attempts in a row the coordinator may hang up during the handshake before
// Join takes it for a refusal of this site's certificate rather than a hiccup.
constexpr int kHandshakeClosuresToGiveUp = 5;

}  // namespace

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

namespace {

std::shared_ptr<grpc::Channel> SecureChannel(
    const ClientOptions& options, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(int(options.max_message_bytes));
  args.SetMaxSendMessageSize(int(options.max_message_bytes));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, int(options.keepalive_s * 1000));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, std::max(1000, int(options.keepalive_s * 1000 / 3)));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  const int reconnect_max_ms = std::max(100, int(options.reconnect_backoff_max_s * 1000));
  const int reconnect_initial_ms =
      std::min(reconnect_max_ms, std::max(100, int(options.backoff_initial_s * 1000)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, reconnect_initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, reconnect_initial_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, reconnect_max_ms);
  return grpc::CreateCustomChannel(options.target, std::move(credentials), args);
}

}  // namespace

CoordinatorClient::CoordinatorClient(ClientOptions options,
                                     std::shared_ptr<grpc::ChannelCredentials> credentials)
    : CoordinatorClient(options, SecureChannel(options, std::move(credentials))) {}

CoordinatorClient::CoordinatorClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(fedjoint::v1::Federation::NewStub(channel_)),
      rng_(std::random_device{}()) {}

std::chrono::system_clock::time_point CoordinatorClient::Deadline(double seconds) const {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(seconds));
}

double CoordinatorClient::BackoffSeconds(int attempt) {
  double base = options_.backoff_initial_s * std::pow(2.0, std::min(attempt, 30));
  base = std::min(base, options_.backoff_max_s);
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return base * jitter(rng_);
}

absl::StatusOr<fedjoint::v1::JoinResponse> CoordinatorClient::Join(
    const fedjoint::v1::JoinRequest& request) {
  const std::string what = absl::StrCat("join ", options_.target);
  constexpr char kCheck[] =
      "not retrying: check that this site's certificate is issued by the consortium CA and not "
      "revoked, that tls.ca_cert is the consortium's ca.crt, and that 'coordinator' names a host "
      "in the coordinator's certificate";
  int closures = 0;  // consecutive hang-ups during the handshake
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(options_.unary_timeout_s));
    fedjoint::v1::JoinResponse response;
    grpc::Status status = stub_->Join(&context, request, &response);
    if (status.ok()) return response;
    const ConnectFailure failure = ClassifyConnectFailure(status);
    if (failure == ConnectFailure::kTlsRefused) {
      return absl::UnauthenticatedError(
          absl::StrCat(what, ": the TLS handshake with the coordinator failed (",
                       status.error_message(), "); ", kCheck));
    }
    closures = failure == ConnectFailure::kClosedDuringHandshake ? closures + 1 : 0;
    if (closures >= kHandshakeClosuresToGiveUp) {
      return absl::UnauthenticatedError(absl::StrCat(
          what,
          ": the TLS handshake with the coordinator failed: it closed the connection during "
          "the handshake ",
          closures,
          " times in a row, as it does when it refuses this site's "
          "certificate (",
          status.error_message(), "); ", kCheck));
    }
    if (!Retryable(status.error_code()) ||
        (options_.max_attempts > 0 && attempt + 1 >= options_.max_attempts)) {
      return FromGrpc(status, what);
    }
    double wait = BackoffSeconds(attempt);
    Log()->warn("coordinator {} not reachable ({}); retrying in {:.1f} s", options_.target,
                status.error_message(), wait);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
}

absl::StatusOr<fedjoint::v1::Task> CoordinatorClient::GetTask(const std::string& session_id,
                                                              int64_t last_round) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(options_.task_poll_s + options_.unary_timeout_s));
  fedjoint::v1::TaskRequest request;
  request.set_site(options_.site);
  request.set_session_id(session_id);
  request.set_last_round(last_round);
  fedjoint::v1::Task task;
  grpc::Status status = stub_->GetTask(&context, request, &task);
  if (!status.ok()) return FromGrpc(status, "get task");
  return task;
}

absl::StatusOr<common::base::Sha256Digest> CoordinatorClient::DownloadModel(
    const std::string& session_id, int64_t round, const std::string& digest, int64_t expected_bytes,
    const std::filesystem::path& out) {
  const std::string what = absl::StrCat("download of model ", digest.substr(0, 12));
  grpc::ClientContext context;
  // Generous overall bound (1 MB/s floor); the watchdog enforces progress.
  context.set_deadline(Deadline(options_.unary_timeout_s + double(expected_bytes) / 1e6));
  StallWatchdog watchdog(&context, std::chrono::duration<double>(options_.stall_timeout_s));
  fedjoint::v1::DownloadRequest request;
  request.set_site(options_.site);
  request.set_session_id(session_id);
  request.set_round(round);
  request.set_model_digest(digest);
  auto reader = stub_->DownloadModel(&context, request);
  auto sink = HashingFileSink::Open(out);
  if (!sink.ok()) return sink.status();
  fedjoint::v1::Chunk chunk;
  int64_t received = 0, total = -1;
  std::string expected_sha;
  absl::Status failure;
  while (reader->Read(&chunk)) {
    watchdog.Progress();
    if (total < 0) {
      total = chunk.total_bytes();
      expected_sha = chunk.sha256();
      if (total != expected_bytes) {
        failure = absl::DataLossError(absl::StrCat(what, ": coordinator sends ", total,
                                                   " bytes, the task announced ", expected_bytes));
        context.TryCancel();
        break;
      }
    }
    const int64_t size = int64_t(chunk.data().size());
    if (chunk.offset() != received || received + size > total) {
      failure =
          absl::DataLossError(absl::StrCat(what, ": chunk at offset ", chunk.offset(), " (", size,
                                           " bytes) after ", received, " of ", total, " bytes"));
      context.TryCancel();
      break;
    }
    // Hashed and written on the sink's thread while this one receives the next chunk.
    if (auto s = (*sink)->Push(std::move(*chunk.mutable_data())); !s.ok()) {
      failure = s;
      context.TryCancel();
      break;
    }
    *chunk.mutable_data() = (*sink)->Spare();
    received += size;
  }
  grpc::Status status = reader->Finish();
  if (!failure.ok()) return failure;
  if (watchdog.fired()) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": no progress for ", options_.stall_timeout_s, " s"));
  }
  if (!status.ok()) return FromGrpc(status, what);
  if (received != total) {
    return absl::DataLossError(absl::StrCat(what, ": got ", received, " of ", total, " bytes"));
  }
  auto got = (*sink)->Drain();
  if (!got.ok()) return got.status();
  if (std::string hex = common::base::DigestToHex(*got); hex != expected_sha) {
    return absl::DataLossError(absl::StrCat(what, ": transfer digest mismatch (got ", hex,
                                            ", expected ", expected_sha, ")"));
  }
  if (auto s = (*sink)->Commit(common::base::AtomicFileWriter::Sync::kSkip); !s.ok()) return s;
  return *got;
}

absl::StatusOr<fedjoint::v1::UploadResponse> CoordinatorClient::UploadUpdate(
    fedjoint::v1::UploadHeader header, const common::tensors::SafetensorsEncoding& encoding) {
  const std::string what = absl::StrCat("upload of round ", header.round(), " update");
  grpc::ClientContext context;
  context.set_deadline(Deadline(options_.unary_timeout_s * 4 + double(encoding.total_size) / 1e6));
  StallWatchdog watchdog(&context, std::chrono::duration<double>(options_.stall_timeout_s));
  fedjoint::v1::UploadResponse response;
  auto writer = stub_->UploadUpdate(&context, &response);
  header.set_site(options_.site);
  header.set_total_bytes(int64_t(encoding.total_size));
  fedjoint::v1::UploadMessage message;
  *message.mutable_header() = std::move(header);
  // The trailer's SHA-256 is computed on another thread while the chunks go out (the encoding's
  // bytes do not change while this call runs); for a small update a thread is not worth it.
  std::string sha_hex;
  auto hash = [&] {
    common::base::Sha256Hasher sha;
    sha.Update(encoding.header.data(), encoding.header.size());
    for (const auto& segment : encoding.segments) sha.Update(segment.data(), segment.size());
    // Only an OpenSSL failure (out of memory) leaves it empty; the coordinator then refuses the
    // update for its missing trailer digest.
    if (auto digest = sha.Finish(); digest.ok()) sha_hex = common::base::DigestToHex(*digest);
  };
  std::thread hasher;
  if (encoding.total_size >= uint64_t(4 * options_.chunk_bytes)) {
    hasher = std::thread(hash);
  } else {
    hash();
  }
  bool ok = writer->Write(message);
  // One chunk message, reused: bytes are copied once, into it, then serialized by gRPC.
  fedjoint::v1::UploadMessage m;
  std::string* data = m.mutable_chunk()->mutable_data();
  data->reserve(size_t(options_.chunk_bytes));
  int64_t offset = 0;
  auto flush = [&]() {
    if (!ok || data->empty()) return;
    m.mutable_chunk()->set_offset(offset);
    ok = writer->Write(m);
    watchdog.Progress();
    offset += int64_t(data->size());
    data->clear();
  };
  auto append = [&](const char* p, size_t n) {
    while (n > 0 && ok) {
      size_t take = std::min(n, size_t(options_.chunk_bytes) - data->size());
      data->append(p, take);
      p += take;
      n -= take;
      if (data->size() == size_t(options_.chunk_bytes)) flush();
    }
  };
  append(encoding.header.data(), encoding.header.size());
  for (const auto& segment : encoding.segments) {
    append(reinterpret_cast<const char*>(segment.data()), segment.size());
  }
  flush();
  if (hasher.joinable()) hasher.join();
  if (ok) {
    fedjoint::v1::UploadMessage trailer;
    trailer.mutable_trailer()->set_sha256(sha_hex);
    ok = writer->Write(trailer);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (watchdog.fired()) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": no progress for ", options_.stall_timeout_s, " s"));
  }
  if (!status.ok()) return FromGrpc(status, what);
  return response;
}

absl::StatusOr<fedjoint::v1::HeartbeatResponse> CoordinatorClient::Heartbeat(
    const fedjoint::v1::HeartbeatRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(options_.unary_timeout_s));
  fedjoint::v1::HeartbeatResponse response;
  grpc::Status status = stub_->Heartbeat(&context, request, &response);
  if (!status.ok()) return FromGrpc(status, "heartbeat");
  return response;
}

absl::StatusOr<fedjoint::v1::PhaseModel> CoordinatorClient::LatestModel() {
  grpc::ClientContext context;
  context.set_deadline(Deadline(options_.unary_timeout_s));
  fedjoint::v1::LatestModelRequest request;
  request.set_site(options_.site);
  fedjoint::v1::PhaseModel model;
  grpc::Status status = stub_->LatestModel(&context, request, &model);
  if (!status.ok()) return FromGrpc(status, "latest model");
  return model;
}

absl::Status CoordinatorClient::ReportMetrics(const fedjoint::v1::MetricsReport& report) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(options_.unary_timeout_s));
  fedjoint::v1::MetricsResponse response;
  return FromGrpc(stub_->ReportMetrics(&context, report, &response), "report metrics");
}

}  // namespace fedjoint::site_agent
