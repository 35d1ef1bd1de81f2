#include "coordinator/service/federation_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"
#include "common/log/logging.h"
#include "common/security/peer_identity.h"

namespace fedjoint::coordinator {
namespace {

std::shared_ptr<spdlog::logger> Log() { return common::log::Get("transport"); }

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(s));
  return reactor;
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

PeerAuthenticator CertificateAuthenticator(
    std::shared_ptr<common::security::RevocationList> revocations) {
  return [revocations = std::move(revocations)](
             grpc::CallbackServerContext* context) -> absl::StatusOr<std::string> {
    auto auth = context->auth_context();
    if (!auth) return absl::UnauthenticatedError("no TLS peer identity on the connection");
    return common::security::AuthenticatePeer(*auth, *revocations);
  };
}

bool TransferSlots::Acquire(Waiter* waiter) {
  if (unlimited_) return true;
  std::lock_guard lock(mutex_);
  if (free_ > 0) {
    --free_;
    return true;
  }
  waiting_.push_back(waiter);
  return false;
}

bool TransferSlots::Cancel(Waiter* waiter) {
  std::lock_guard lock(mutex_);
  auto it = std::find(waiting_.begin(), waiting_.end(), waiter);
  if (it == waiting_.end()) return false;
  waiting_.erase(it);
  return true;
}

void TransferSlots::Release() {
  if (unlimited_) return;
  Waiter* next = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (waiting_.empty()) {
      ++free_;
      return;
    }
    next = waiting_.front();
    waiting_.pop_front();
  }
  next->Granted();
}

int TransferSlots::waiting() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(waiting_.size());
}

// A reactor's place in line for a transfer slot: Start() runs when it holds one; a cancelled RPC
// that is still waiting is finished with CANCELLED.
class SlotHolder : public TransferSlots::Waiter {
 public:
  explicit SlotHolder(TransferSlots* slots) : slots_(slots) {}
  virtual ~SlotHolder() = default;

 protected:
  // Call once the RPC is set up; runs Start() now or when a slot frees up.
  void WaitForSlot() {
    if (slots_->Acquire(this)) {
      {
        std::lock_guard lock(mutex_);
        holds_ = true;
      }
      Start();
    }
  }
  // From the reactor's OnCancel(): true when it was still waiting (the caller then finishes it).
  bool CancelWait() {
    std::lock_guard lock(mutex_);
    return !holds_ && slots_->Cancel(this);
  }
  // From the reactor's OnDone().
  void ReleaseSlot() {
    bool held;
    {
      std::lock_guard lock(mutex_);
      held = holds_;
      holds_ = false;
    }
    if (held) slots_->Release();
  }
  virtual void Start() = 0;

 private:
  void Granted() override {
    {
      std::lock_guard lock(mutex_);
      holds_ = true;
    }
    Start();
  }
  TransferSlots* slots_;
  std::mutex mutex_;
  bool holds_ = false;
};

FederationService::FederationService(JobHandler* job, PeerAuthenticator authenticate,
                                     ServiceOptions options, Clock clock)
    : job_(job),
      authenticate_(std::move(authenticate)),
      options_(options),
      clock_(std::move(clock)),
      transfer_slots_(options.max_concurrent_transfers) {}

FederationService::~FederationService() { DrainPolls(); }

absl::StatusOr<std::string> FederationService::Authenticate(grpc::CallbackServerContext* context,
                                                            const std::string& claimed) {
  auto site = authenticate_(context);
  if (!site.ok()) {
    Log()->warn("refused {}: {}", context->peer(), std::string(site.status().message()));
    return site.status();
  }
  if (!claimed.empty() && claimed != *site) {
    Log()->warn("refused {}: certificate of site '{}' used to claim site '{}'", context->peer(),
                *site, claimed);
    return absl::PermissionDeniedError(absl::StrCat("the client certificate identifies site '",
                                                    *site, "', but the request claims site '",
                                                    claimed, "'"));
  }
  return site;
}

// ------------------------------------------------------------------------------------- Join etc.

grpc::ServerUnaryReactor* FederationService::Join(grpc::CallbackServerContext* context,
                                                  const fedjoint::v1::JoinRequest* request,
                                                  fedjoint::v1::JoinResponse* response) {
  auto site = Authenticate(context, request->site());
  if (!site.ok()) return FinishNow(context, site.status());
  auto joined = job_->Join(*site, *request, Now());
  if (joined.ok()) *response = std::move(*joined);
  return FinishNow(context, joined.status());
}

grpc::ServerUnaryReactor* FederationService::Heartbeat(
    grpc::CallbackServerContext* context, const fedjoint::v1::HeartbeatRequest* request,
    fedjoint::v1::HeartbeatResponse* response) {
  auto site = Authenticate(context, request->site());
  if (!site.ok()) return FinishNow(context, site.status());
  auto answer = job_->Heartbeat(*site, *request, Now());
  if (answer.ok()) *response = *answer;
  return FinishNow(context, answer.status());
}

grpc::ServerUnaryReactor* FederationService::ReportMetrics(
    grpc::CallbackServerContext* context, const fedjoint::v1::MetricsReport* request,
    fedjoint::v1::MetricsResponse* /*response*/) {
  auto site = Authenticate(context, request->site());
  if (!site.ok()) return FinishNow(context, site.status());
  return FinishNow(context, job_->ReportMetrics(*site, *request, Now()));
}

grpc::ServerUnaryReactor* FederationService::LatestModel(
    grpc::CallbackServerContext* context, const fedjoint::v1::LatestModelRequest* request,
    fedjoint::v1::PhaseModel* response) {
  auto site = Authenticate(context, request->site());
  if (!site.ok()) return FinishNow(context, site.status());
  auto latest = job_->LatestModel();
  if (latest.ok()) *response = std::move(*latest);
  return FinishNow(context, latest.status());
}

// ------------------------------------------------------------------------------ GetTask long poll

class FederationService::TaskPoll final : public grpc::ServerUnaryReactor {
 public:
  TaskPoll(std::string site, fedjoint::v1::Task* response, double give_up_s, TaskEpoch epoch)
      : site_(std::move(site)), response_(response), give_up_s_(give_up_s), epoch_(epoch) {}

  void OnCancel() override { cancelled_ = true; }
  void OnDone() override { delete this; }

  const std::string site_;
  fedjoint::v1::Task* const response_;
  const double give_up_s_;
  TaskEpoch epoch_;  // the job's task epoch when the answer was last WAIT
  std::atomic<bool> cancelled_{false};
};

grpc::ServerUnaryReactor* FederationService::GetTask(grpc::CallbackServerContext* context,
                                                     const fedjoint::v1::TaskRequest* request,
                                                     fedjoint::v1::Task* response) {
  auto site = Authenticate(context, request->site());
  if (!site.ok()) return FinishNow(context, site.status());
  // Taken before asking: a change in between makes the next tick ask again.
  const TaskEpoch epoch = job_->task_epoch();
  const double now = Now();
  auto task = job_->TaskFor(*site, now);
  if (!task.ok() || task->kind() != fedjoint::v1::Task::WAIT) {
    if (task.ok()) *response = std::move(*task);
    return FinishNow(context, task.status());
  }
  auto* poll = new TaskPoll(*site, response, now + options_.task_poll_s, epoch);
  std::lock_guard lock(polls_mutex_);
  if (draining_) {
    poll->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator shutting down"));
  } else {
    polls_.push_back(poll);
  }
  return poll;
}

void FederationService::AnswerPolls() {
  const double now = Now();
  // A waiting site's task changes only when the job's task epoch does (a round opens, closes,
  // is retried, the job ends): otherwise a tick only looks at cancellations and expiries, so
  // ticking often (as after every accepted update) costs little with many sites waiting.
  const TaskEpoch epoch = job_->task_epoch();
  std::lock_guard lock(polls_mutex_);
  for (auto it = polls_.begin(); it != polls_.end();) {
    TaskPoll* poll = *it;
    grpc::Status status;
    bool finish = false;
    if (poll->cancelled_) {
      status = grpc::Status::CANCELLED;
      finish = true;
    } else if (poll->epoch_ == epoch && now < poll->give_up_s_) {
      // Still WAIT.
    } else {
      poll->epoch_ = epoch;
      auto task = job_->TaskFor(poll->site_, now);
      if (!task.ok()) {
        status = ToGrpc(task.status());
        finish = true;
      } else if (task->kind() != fedjoint::v1::Task::WAIT || now >= poll->give_up_s_) {
        *poll->response_ = std::move(*task);
        finish = true;
      }
    }
    if (finish) {
      it = polls_.erase(it);
      poll->Finish(status);
    } else {
      ++it;
    }
  }
}

void FederationService::WaitForTick(std::chrono::duration<double> timeout) {
  std::unique_lock lock(tick_mutex_);
  tick_cv_.wait_for(lock, timeout, [&] { return tick_requested_ || ticks_stopped_; });
  tick_requested_ = false;
}

void FederationService::RequestTick() {
  {
    std::lock_guard lock(tick_mutex_);
    tick_requested_ = true;
  }
  tick_cv_.notify_all();
}

void FederationService::StopTicks() {
  {
    std::lock_guard lock(tick_mutex_);
    ticks_stopped_ = true;
  }
  tick_cv_.notify_all();
}

size_t FederationService::waiting_polls() {
  std::lock_guard lock(polls_mutex_);
  return polls_.size();
}

void FederationService::DrainPolls() {
  std::lock_guard lock(polls_mutex_);
  draining_ = true;
  for (TaskPoll* poll : polls_) {
    poll->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator shutting down"));
  }
  polls_.clear();
}

// -------------------------------------------------------------------------------- DownloadModel

class FederationService::Download final : public grpc::ServerWriteReactor<fedjoint::v1::Chunk>,
                                          public SlotHolder {
 public:
  Download(FederationService* service, grpc::CallbackServerContext* context,
           const fedjoint::v1::DownloadRequest* request)
      : SlotHolder(&service->transfer_slots_), chunk_bytes_(service->options_.chunk_bytes) {
    absl::Status status = Open(service, context, request);
    if (!status.ok()) {
      Finish(ToGrpc(status));
      return;
    }
    WaitForSlot();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken"));
    WriteNext();
  }
  void OnCancel() override {
    if (CancelWait()) Finish(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    ReleaseSlot();
    if (fd_ >= 0) ::close(fd_);
    delete this;
  }

 private:
  absl::Status Open(FederationService* service, grpc::CallbackServerContext* context,
                    const fedjoint::v1::DownloadRequest* request) {
    auto site = service->Authenticate(context, request->site());
    if (!site.ok()) return site.status();
    auto model = service->job_->FindModel(request->model_digest());
    if (!model.ok()) return model.status();
    if (request->offset() < 0 || request->offset() > model->size) {
      return absl::OutOfRangeError(absl::StrCat("download offset ", request->offset(),
                                                " outside the model's ", model->size, " bytes"));
    }
    // Read with pread into each chunk (the one copy a chunk needs anyway) rather than mapped:
    // a mapping per concurrent download would count the model once per site in the
    // coordinator's resident memory, and keep pages of models no one downloads any more.
    fd_ = ::open(model->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return common::base::ErrnoToStatus(errno, "cannot open", model->path.string());
    path_ = model->path.string();
    offset_ = request->offset();
    total_ = model->size;
    sha256_ = model->file_sha256;
    return absl::OkStatus();
  }

  void Start() override { WriteNext(); }

  void WriteNext() {
    if (offset_ >= total_ && !first_) return Finish(grpc::Status::OK);
    // The chunk message and its buffer are reused: no clearing and zero-filling of 1 MB per chunk.
    chunk_.set_offset(offset_);
    if (first_) {
      chunk_.set_total_bytes(total_);
      chunk_.set_sha256(sha256_);
    } else if (!chunk_.sha256().empty()) {
      chunk_.clear_total_bytes();
      chunk_.clear_sha256();
    }
    first_ = false;
    const int64_t n = std::min(chunk_bytes_, total_ - offset_);
    std::string* data = chunk_.mutable_data();
    data->resize(size_t(n));
    for (int64_t done = 0; done < n;) {
      ssize_t got = ::pread(fd_, data->data() + done, size_t(n - done), offset_ + done);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        absl::Status status =
            got < 0
                ? common::base::ErrnoToStatus(errno, "cannot read", path_)
                : absl::DataLossError(absl::StrCat(path_, ": shorter than its ", total_, " bytes"));
        return Finish(ToGrpc(status));
      }
      done += got;
    }
    offset_ += n;
    StartWrite(&chunk_);
  }

  const int64_t chunk_bytes_;
  int fd_ = -1;
  std::string path_;
  int64_t offset_ = 0;
  int64_t total_ = 0;
  std::string sha256_;
  bool first_ = true;
  fedjoint::v1::Chunk chunk_;
};

grpc::ServerWriteReactor<fedjoint::v1::Chunk>* FederationService::DownloadModel(
    grpc::CallbackServerContext* context, const fedjoint::v1::DownloadRequest* request) {
  return new Download(this, context, request);
}

// --------------------------------------------------------------------------------- UploadUpdate

class FederationService::Upload final : public grpc::ServerReadReactor<fedjoint::v1::UploadMessage>,
                                        public SlotHolder {
 public:
  Upload(FederationService* service, grpc::CallbackServerContext* context,
         fedjoint::v1::UploadResponse* response)
      : SlotHolder(&service->transfer_slots_),
        service_(service),
        context_(context),
        response_(response) {
    auto site = service_->Authenticate(context, "");
    if (!site.ok()) {
      Finish(ToGrpc(site.status()));
      return;
    }
    site_ = *site;
    // Nothing is read before the upload holds a slot: until then its bytes wait in the site's
    // stream, held back by flow control.
    WaitForSlot();
  }

  void OnCancel() override {
    if (CancelWait()) Finish(grpc::Status::CANCELLED);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("update from site '", site_, "': stream ended before the trailer")));
    }
    absl::Status status;
    switch (message_.part_case()) {
      case fedjoint::v1::UploadMessage::kHeader:
        status = OnHeader(message_.header());
        break;
      case fedjoint::v1::UploadMessage::kChunk:
        if (!sink_) {
          status = absl::InvalidArgumentError("upload chunk before the header");
        } else {
          status = sink_->Append(message_.chunk().offset(), message_.chunk().data());
        }
        break;
      case fedjoint::v1::UploadMessage::kTrailer:
        if (!sink_) return Fail(absl::InvalidArgumentError("upload trailer before the header"));
        return Complete(message_.trailer().sha256());
      default:
        status = absl::InvalidArgumentError("empty upload message");
    }
    if (!status.ok()) return Fail(status);
    StartRead(&message_);
  }

  void OnDone() override {
    ReleaseSlot();
    delete this;
  }

 private:
  void Start() override { StartRead(&message_); }

  absl::Status OnHeader(const fedjoint::v1::UploadHeader& header) {
    if (sink_) return absl::InvalidArgumentError("second upload header");
    if (header.site() != site_) {
      return absl::PermissionDeniedError(absl::StrCat("the client certificate identifies site '",
                                                      site_, "', but the update claims site '",
                                                      header.site(), "'"));
    }
    auto sink = service_->job_->BeginUpload(site_, header, service_->Now());
    if (!sink.ok()) return sink.status();
    sink_ = std::move(*sink);
    return absl::OkStatus();
  }

  void Complete(const std::string& sha256) {
    auto digest = service_->job_->FinishUpload(std::move(sink_), sha256, service_->Now());
    if (!digest.ok()) return Fail(digest.status());
    response_->set_accepted(true);
    response_->set_update_digest(*digest);
    service_->RequestTick();  // it may have been the update the round waited for
    Finish(grpc::Status::OK);
  }

  void Fail(const absl::Status& status) {
    sink_.reset();  // releases the round slot: the site may try again
    Finish(ToGrpc(status));
  }

  FederationService* service_;
  grpc::CallbackServerContext* context_;
  fedjoint::v1::UploadResponse* response_;
  std::string site_;
  fedjoint::v1::UploadMessage message_;
  std::unique_ptr<UpdateSink> sink_;
};

grpc::ServerReadReactor<fedjoint::v1::UploadMessage>* FederationService::UploadUpdate(
    grpc::CallbackServerContext* context, fedjoint::v1::UploadResponse* response) {
  return new Upload(this, context, response);
}

}  // namespace fedjoint::coordinator
