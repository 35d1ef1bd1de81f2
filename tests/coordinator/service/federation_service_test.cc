// The coordinator's transport without a network: FederationService on gRPC's in-process channel,
// in front of a fake job, with a fake clock and an authenticator that reads the site from call
// metadata (the production one reads the verified client certificate; see tests/integration).
#include "coordinator/service/federation_service.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;
using fedjoint::v1::Task;

constexpr char kSiteMetadata[] = "x-test-site";

class FakeSink final : public UpdateSink {
 public:
  explicit FakeSink(std::string* bytes) : bytes_(bytes) {}
  absl::Status Append(int64_t offset, std::string_view bytes) override {
    if (offset != int64_t(bytes_->size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk at ", offset, ", expected ", bytes_->size()));
    }
    bytes_->append(bytes);
    return absl::OkStatus();
  }

 private:
  std::string* bytes_;
};

// Records what the transport hands over; answers what the test sets.
class FakeJob final : public JobHandler {
 public:
  absl::StatusOr<fedjoint::v1::JoinResponse> Join(const std::string& site,
                                                  const fedjoint::v1::JoinRequest&,
                                                  double now_s) override {
    std::lock_guard lock(mutex);
    joined.push_back(site);
    join_times.push_back(now_s);
    fedjoint::v1::JoinResponse response;
    response.set_job_id("fake-job");
    return response;
  }
  absl::StatusOr<Task> TaskFor(const std::string&, double) override {
    std::lock_guard lock(mutex);
    return task;
  }
  absl::StatusOr<PublishedModel> FindModel(const std::string& digest) const override {
    std::lock_guard lock(mutex);
    if (!model || digest != model->digest) return absl::NotFoundError("no model " + digest);
    return *model;
  }
  absl::StatusOr<fedjoint::v1::PhaseModel> LatestModel() const override {
    return absl::NotFoundError("no round finished");
  }
  absl::StatusOr<std::unique_ptr<UpdateSink>> BeginUpload(const std::string& site,
                                                          const fedjoint::v1::UploadHeader&,
                                                          double) override {
    std::lock_guard lock(mutex);
    upload_sites.push_back(site);
    return std::make_unique<FakeSink>(&uploaded);
  }
  absl::StatusOr<std::string> FinishUpload(std::unique_ptr<UpdateSink>,
                                           const std::string& sha256_hex, double) override {
    std::lock_guard lock(mutex);
    finished_sha256 = sha256_hex;
    return std::string("update-digest");
  }
  absl::StatusOr<fedjoint::v1::HeartbeatResponse> Heartbeat(const std::string&,
                                                            const fedjoint::v1::HeartbeatRequest&,
                                                            double) override {
    return fedjoint::v1::HeartbeatResponse();
  }
  absl::Status ReportMetrics(const std::string&, const fedjoint::v1::MetricsReport&,
                             double) override {
    return absl::OkStatus();
  }
  absl::Status Tick(double) override { return absl::OkStatus(); }
  TaskEpoch task_epoch() const override {
    std::lock_guard lock(mutex);
    return epoch;
  }

  void SetTask(Task::Kind kind, int64_t round) {
    std::lock_guard lock(mutex);
    task.set_kind(kind);
    task.set_round(round);
    epoch = {int(kind), round, 0};
  }

  mutable std::mutex mutex;
  Task task;
  TaskEpoch epoch{0, 0, 0};
  std::optional<PublishedModel> model;
  std::vector<std::string> joined;
  std::vector<double> join_times;
  std::vector<std::string> upload_sites;
  std::string uploaded;
  std::string finished_sha256;
};

absl::StatusOr<std::string> SiteFromMetadata(grpc::CallbackServerContext* context) {
  auto it = context->client_metadata().find(kSiteMetadata);
  if (it == context->client_metadata().end()) {
    return absl::UnauthenticatedError("no site on the call");
  }
  return std::string(it->second.data(), it->second.size());
}

// The outcome of an asynchronous call, for a test thread to wait on.
class Outcome {
 public:
  void Set(grpc::Status status) {
    std::lock_guard lock(mutex_);
    status_ = std::move(status);
    cv_.notify_all();
  }
  // Empty when the call has not finished within `timeout`.
  std::optional<grpc::Status> Wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return status_.has_value(); });
    return status_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<grpc::Status> status_;
};

class FederationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceOptions options;
    options.task_poll_s = 10;
    options.chunk_bytes = 4;
    service_ = std::make_unique<FederationService>(&job_, SiteFromMetadata, options,
                                                   [this] { return now_.load(); });
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = fedjoint::v1::Federation::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    service_->DrainPolls();
    server_->Shutdown();
    for (const auto& poll : polls_) {
      EXPECT_TRUE(poll->outcome.Wait(std::chrono::seconds(10)).has_value()) << "a poll never ended";
    }
  }

  // A GetTask of `site` the service holds as a waiting poll.
  struct Poll {
    fedjoint::v1::TaskRequest request;
    Task task;
    std::unique_ptr<grpc::ClientContext> context;
    Outcome outcome;
  };
  // Owned by the fixture, which waits for every call to end before it goes.
  Poll* StartPoll(const std::string& site) {
    Poll* poll = polls_.emplace_back(std::make_unique<Poll>()).get();
    poll->request.set_site(site);
    poll->context = From(site);
    stub_->async()->GetTask(poll->context.get(), &poll->request, &poll->task,
                            [poll](grpc::Status s) { poll->outcome.Set(std::move(s)); });
    WaitForPolls(1);
    return poll;
  }

  // Until the service holds `n` waiting polls (a call reaches the service asynchronously).
  void WaitForPolls(size_t n) {
    for (int i = 0; i < 2000 && service_->waiting_polls() != n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(service_->waiting_polls(), n);
  }

  // A call context from `site` (empty: no identity at all).
  std::unique_ptr<grpc::ClientContext> From(const std::string& site) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!site.empty()) context->AddMetadata(kSiteMetadata, site);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return context;
  }

  FakeJob job_;
  std::atomic<double> now_{1000};
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<fedjoint::v1::Federation::Stub> stub_;
  std::vector<std::unique_ptr<Poll>> polls_;
};

TEST_F(FederationServiceTest, AJoinReachesTheJobOnlyForTheAuthenticatedSite) {
  fedjoint::v1::JoinRequest request;
  fedjoint::v1::JoinResponse response;
  request.set_site("north");
  ASSERT_TRUE(stub_->Join(From("north").get(), request, &response).ok());
  EXPECT_EQ(response.job_id(), "fake-job");

  // The certificate says east, the request claims north.
  grpc::Status claimed = stub_->Join(From("east").get(), request, &response);
  EXPECT_EQ(claimed.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(claimed.error_message().find("identifies site 'east'"), std::string::npos)
      << claimed.error_message();
  EXPECT_EQ(stub_->Join(From("").get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  std::lock_guard lock(job_.mutex);
  EXPECT_EQ(job_.joined, std::vector<std::string>{"north"});
  EXPECT_EQ(job_.join_times, std::vector<double>{1000});  // the runner's clock, not the wall's
}

TEST_F(FederationServiceTest, AWaitingPollIsAnsweredWhenItsTaskChanges) {
  job_.SetTask(Task::WAIT, 0);
  auto poll = StartPoll("north");
  if (HasFatalFailure()) return;
  Outcome& outcome = poll->outcome;
  const Task& task = poll->task;
  // Nothing changed: the poll stays open however often the runner asks.
  for (int i = 0; i < 3; ++i) service_->AnswerPolls();
  EXPECT_FALSE(outcome.Wait(std::chrono::milliseconds(200)).has_value());

  job_.SetTask(Task::TRAIN, 3);
  service_->AnswerPolls();
  auto status = outcome.Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(status->ok()) << status->error_message();
  EXPECT_EQ(task.kind(), Task::TRAIN);
  EXPECT_EQ(task.round(), 3);
}

TEST_F(FederationServiceTest, AWaitingPollGetsWaitWhenItsWindowEndsOnTheRunnersClock) {
  job_.SetTask(Task::WAIT, 0);
  auto poll = StartPoll("north");
  if (HasFatalFailure()) return;
  Outcome& outcome = poll->outcome;
  const Task& task = poll->task;
  now_ = 1009;
  service_->AnswerPolls();
  EXPECT_FALSE(outcome.Wait(std::chrono::milliseconds(200)).has_value());
  now_ = 1010.5;  // past the 10 s window
  service_->AnswerPolls();
  auto status = outcome.Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(status->ok()) << status->error_message();
  EXPECT_EQ(task.kind(), Task::WAIT);
}

TEST_F(FederationServiceTest, DrainingAnswersWaitingPollsUnavailable) {
  job_.SetTask(Task::WAIT, 0);
  auto poll = StartPoll("north");
  if (HasFatalFailure()) return;
  Outcome& outcome = poll->outcome;
  EXPECT_FALSE(outcome.Wait(std::chrono::milliseconds(100)).has_value());
  service_->DrainPolls();
  auto status = outcome.Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->error_code(), grpc::StatusCode::UNAVAILABLE);
}

fedjoint::v1::UploadMessage Header(const std::string& site, int64_t total) {
  fedjoint::v1::UploadMessage m;
  m.mutable_header()->set_site(site);
  m.mutable_header()->set_round(1);
  m.mutable_header()->set_total_bytes(total);
  return m;
}

fedjoint::v1::UploadMessage Chunk(int64_t offset, const std::string& data) {
  fedjoint::v1::UploadMessage m;
  m.mutable_chunk()->set_offset(offset);
  m.mutable_chunk()->set_data(data);
  return m;
}

TEST_F(FederationServiceTest, AnUploadStreamsIntoTheJobsSinkAndReturnsItsDigest) {
  fedjoint::v1::UploadResponse response;
  auto context = From("south");
  auto writer = stub_->UploadUpdate(context.get(), &response);
  ASSERT_TRUE(writer->Write(Header("south", 10)));
  ASSERT_TRUE(writer->Write(Chunk(0, "hello")));
  ASSERT_TRUE(writer->Write(Chunk(5, "world")));
  fedjoint::v1::UploadMessage trailer;
  trailer.mutable_trailer()->set_sha256("abc123");
  ASSERT_TRUE(writer->Write(trailer));
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.accepted());
  EXPECT_EQ(response.update_digest(), "update-digest");
  std::lock_guard lock(job_.mutex);
  EXPECT_EQ(job_.upload_sites, std::vector<std::string>{"south"});
  EXPECT_EQ(job_.uploaded, "helloworld");
  EXPECT_EQ(job_.finished_sha256, "abc123");
}

TEST_F(FederationServiceTest, AnUpdateClaimingAnotherSiteNeverReachesTheJob) {
  fedjoint::v1::UploadResponse response;
  auto context = From("south");
  auto writer = stub_->UploadUpdate(context.get(), &response);
  writer->Write(Header("north", 10));
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(status.error_message().find("claims site 'north'"), std::string::npos)
      << status.error_message();
  std::lock_guard lock(job_.mutex);
  EXPECT_TRUE(job_.upload_sites.empty());
}

TEST_F(FederationServiceTest, AChunkBeforeTheHeaderIsRefused) {
  fedjoint::v1::UploadResponse response;
  auto context = From("south");
  auto writer = stub_->UploadUpdate(context.get(), &response);
  writer->Write(Chunk(0, "hello"));
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("before the header"), std::string::npos);
}

class FederationServiceDownloadTest : public FederationServiceTest {
 protected:
  void SetUp() override {
    FederationServiceTest::SetUp();
    path_ = fs::path(::testing::TempDir()) /
            absl::StrCat("service-model-", ::testing::UnitTest::GetInstance()->random_seed());
    std::ofstream(path_, std::ios::binary) << "0123456789";  // 3 chunks of 4 bytes at most
    job_.model = PublishedModel{path_, "model-digest", "file-sha", "sig", 10};
  }
  void TearDown() override {
    FederationServiceTest::TearDown();
    fs::remove(path_);
  }

  // The chunks of a download from `offset`, and its status.
  std::pair<std::vector<fedjoint::v1::Chunk>, grpc::Status> Download(const std::string& digest,
                                                                     int64_t offset) {
    fedjoint::v1::DownloadRequest request;
    request.set_site("east");
    request.set_model_digest(digest);
    request.set_offset(offset);
    auto context = From("east");
    auto reader = stub_->DownloadModel(context.get(), request);
    std::vector<fedjoint::v1::Chunk> chunks;
    fedjoint::v1::Chunk chunk;
    while (reader->Read(&chunk)) chunks.push_back(chunk);
    return {chunks, reader->Finish()};
  }

  fs::path path_;
};

TEST_F(FederationServiceDownloadTest, ADownloadSendsTheFileInChunksWithItsSizeAndDigestFirst) {
  auto [chunks, status] = Download("model-digest", 0);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].total_bytes(), 10);
  EXPECT_EQ(chunks[0].sha256(), "file-sha");
  EXPECT_TRUE(chunks[1].sha256().empty());
  std::string bytes;
  for (const auto& c : chunks) {
    EXPECT_EQ(c.offset(), int64_t(bytes.size()));
    bytes += c.data();
  }
  EXPECT_EQ(bytes, "0123456789");
}

TEST_F(FederationServiceDownloadTest, AResumedDownloadStartsAtItsOffset) {
  auto [chunks, status] = Download("model-digest", 6);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].offset(), 6);
  EXPECT_EQ(chunks[0].data(), "6789");
}

TEST_F(FederationServiceDownloadTest, AnUnknownModelOrAnOffsetPastTheEndIsRefused) {
  EXPECT_EQ(Download("other-digest", 0).second.error_code(), grpc::StatusCode::NOT_FOUND);
  auto past = Download("model-digest", 11).second;
  EXPECT_EQ(past.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(past.error_message().find("outside the model's 10 bytes"), std::string::npos);
}

}  // namespace
}  // namespace fedjoint::coordinator
