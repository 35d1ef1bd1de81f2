// The site's client without a network: CoordinatorClient over gRPC's in-process channel to a fake
// coordinator that answers what each test scripts, including the broken and hostile answers a
// real coordinator (or something posing as one) could send.
#include "site_agent/federation/coordinator_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/base/sha256.h"

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;

std::string Sha256Hex(const std::string& bytes) {
  common::base::Sha256Hasher sha;
  sha.Update(bytes.data(), bytes.size());
  auto digest = sha.Finish();
  return digest.ok() ? common::base::DigestToHex(*digest) : "";
}

class FakeCoordinator final : public fedjoint::v1::Federation::Service {
 public:
  grpc::Status Join(grpc::ServerContext*, const fedjoint::v1::JoinRequest*,
                    fedjoint::v1::JoinResponse* response) override {
    std::lock_guard lock(mutex);
    ++join_calls;
    if (join_failures_left > 0) {
      --join_failures_left;
      return join_failure;
    }
    response->set_session_id("session-1");
    return grpc::Status::OK;
  }

  grpc::Status DownloadModel(grpc::ServerContext*, const fedjoint::v1::DownloadRequest* request,
                             grpc::ServerWriter<fedjoint::v1::Chunk>* writer) override {
    std::lock_guard lock(mutex);
    download_site = request->site();
    for (const fedjoint::v1::Chunk& chunk : chunks) writer->Write(chunk);
    return grpc::Status::OK;
  }

  grpc::Status UploadUpdate(grpc::ServerContext*,
                            grpc::ServerReader<fedjoint::v1::UploadMessage>* reader,
                            fedjoint::v1::UploadResponse* response) override {
    std::lock_guard lock(mutex);
    fedjoint::v1::UploadMessage m;
    while (reader->Read(&m)) {
      if (m.has_header()) header = m.header();
      if (m.has_chunk()) {
        chunk_offsets.push_back(m.chunk().offset());
        uploaded += m.chunk().data();
      }
      if (m.has_trailer()) trailer_sha256 = m.trailer().sha256();
    }
    response->set_accepted(true);
    response->set_update_digest("accepted-digest");
    return grpc::Status::OK;
  }

  // A download as a coordinator would send it: `bytes` in chunks of `chunk` bytes, the first one
  // with the total and the SHA-256.
  void ServeDownload(const std::string& bytes, size_t chunk, const std::string& sha256) {
    chunks.clear();
    for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
      fedjoint::v1::Chunk c;
      c.set_offset(int64_t(offset));
      c.set_data(bytes.substr(offset, chunk));
      if (offset == 0) {
        c.set_total_bytes(int64_t(bytes.size()));
        c.set_sha256(sha256);
      }
      chunks.push_back(c);
    }
  }

  std::mutex mutex;
  int join_calls = 0;
  int join_failures_left = 0;
  grpc::Status join_failure;
  std::vector<fedjoint::v1::Chunk> chunks;
  std::string download_site;
  fedjoint::v1::UploadHeader header;
  std::vector<int64_t> chunk_offsets;
  std::string uploaded;
  std::string trailer_sha256;
};

class CoordinatorClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&coordinator_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    dir_ = fs::path(::testing::TempDir()) /
           ("client-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    server_->Shutdown();
    fs::remove_all(dir_);
  }

  std::unique_ptr<CoordinatorClient> Client(int max_attempts = 0) {
    ClientOptions options;
    options.site = "north";
    options.target = "in-process";
    options.chunk_bytes = 4;
    options.backoff_initial_s = 0.001;
    options.backoff_max_s = 0.002;
    options.unary_timeout_s = 10;
    options.max_attempts = max_attempts;
    return std::make_unique<CoordinatorClient>(options,
                                               server_->InProcessChannel(grpc::ChannelArguments()));
  }

  // A download the client must refuse with DATA_LOSS naming `reason`, leaving no file behind.
  void ExpectRefusedDownload(int64_t announced_bytes, const std::string& reason) {
    const fs::path out = dir_ / "model.safetensors";
    auto sha = Client()->DownloadModel("session-1", 1, "digest", announced_bytes, out);
    EXPECT_EQ(sha.status().code(), absl::StatusCode::kDataLoss) << sha.status();
    EXPECT_NE(sha.status().message().find(reason), std::string::npos) << sha.status();
    EXPECT_FALSE(fs::exists(out));
  }

  FakeCoordinator coordinator_;
  std::unique_ptr<grpc::Server> server_;
  fs::path dir_;
};

TEST_F(CoordinatorClientTest, JoinRetriesAnUnavailableCoordinatorUntilItAnswers) {
  coordinator_.join_failures_left = 3;
  coordinator_.join_failure = grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
  auto joined = Client()->Join(fedjoint::v1::JoinRequest());
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->session_id(), "session-1");
  EXPECT_EQ(coordinator_.join_calls, 4);
}

TEST_F(CoordinatorClientTest, JoinDoesNotRetryARefusal) {
  coordinator_.join_failures_left = 100;
  coordinator_.join_failure = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "revoked");
  auto joined = Client()->Join(fedjoint::v1::JoinRequest());
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(joined.status().message().find("revoked"), std::string::npos);
  EXPECT_EQ(coordinator_.join_calls, 1);
}

TEST_F(CoordinatorClientTest, JoinGivesUpAfterMaxAttempts) {
  coordinator_.join_failures_left = 100;
  coordinator_.join_failure = grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  auto joined = Client(/*max_attempts=*/3)->Join(fedjoint::v1::JoinRequest());
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(coordinator_.join_calls, 3);
}

TEST_F(CoordinatorClientTest, ADownloadIsWrittenWhenItsBytesMatchTheirDigest) {
  const std::string bytes = "model bytes, eleven chunks of four";
  coordinator_.ServeDownload(bytes, 4, Sha256Hex(bytes));
  const fs::path out = dir_ / "model.safetensors";
  auto sha = Client()->DownloadModel("session-1", 1, "digest", int64_t(bytes.size()), out);
  ASSERT_TRUE(sha.ok()) << sha.status();
  EXPECT_EQ(common::base::DigestToHex(*sha), Sha256Hex(bytes));
  std::ifstream in(out, std::ios::binary);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), bytes);
  EXPECT_EQ(coordinator_.download_site, "north");
}

TEST_F(CoordinatorClientTest, ADownloadWhoseBytesDoNotMatchItsDigestLeavesNoFile) {
  const std::string bytes = "model bytes";
  coordinator_.ServeDownload(bytes, 4, Sha256Hex("other bytes"));
  ExpectRefusedDownload(int64_t(bytes.size()), "transfer digest mismatch");
}

TEST_F(CoordinatorClientTest, ADownloadOfAnotherSizeThanTheTaskAnnouncedIsRefused) {
  const std::string bytes = "model bytes";
  coordinator_.ServeDownload(bytes, 4, Sha256Hex(bytes));
  ExpectRefusedDownload(5, "the task announced 5");
}

TEST_F(CoordinatorClientTest, ADownloadWithAChunkOutOfPlaceIsRefused) {
  const std::string bytes = "model bytes!";
  coordinator_.ServeDownload(bytes, 4, Sha256Hex(bytes));
  coordinator_.chunks[1].set_offset(0);  // a replayed chunk
  ExpectRefusedDownload(int64_t(bytes.size()), "chunk at offset 0");
}

TEST_F(CoordinatorClientTest, ADownloadThatEndsShortIsRefused) {
  const std::string bytes = "model bytes!";
  coordinator_.ServeDownload(bytes, 4, Sha256Hex(bytes));
  coordinator_.chunks.pop_back();
  ExpectRefusedDownload(int64_t(bytes.size()), "got 8 of 12 bytes");
}

TEST_F(CoordinatorClientTest, AnUploadSendsTheHeaderChunksInOrderAndTheDigestOfAllBytes) {
  const std::string header = "HEADER";
  const std::string data = "0123456789";
  common::tensors::SafetensorsEncoding encoding;
  encoding.header = header;
  encoding.segments.push_back(std::as_bytes(std::span(data.data(), data.size())));
  encoding.total_size = header.size() + data.size();
  fedjoint::v1::UploadHeader upload;
  upload.set_round(7);
  upload.set_site("someone-else");  // the client always names its own site
  auto response = Client()->UploadUpdate(upload, encoding);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->update_digest(), "accepted-digest");
  EXPECT_EQ(coordinator_.header.site(), "north");
  EXPECT_EQ(coordinator_.header.round(), 7);
  EXPECT_EQ(coordinator_.header.total_bytes(), 16);
  EXPECT_EQ(coordinator_.uploaded, header + data);
  EXPECT_EQ(coordinator_.chunk_offsets, (std::vector<int64_t>{0, 4, 8, 12}));
  EXPECT_EQ(coordinator_.trailer_sha256, Sha256Hex(header + data));
}

}  // namespace
}  // namespace fedjoint::site_agent
