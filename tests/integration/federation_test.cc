// A federation's normal life and the updates and peers it must refuse (fixture in
// federation_fixture.h: real gRPC + mutual TLS on loopback, fake trainers).
#include <ATen/ATen.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "common/base/atomic_file.h"
#include "common/log/logging.h"
#include "common/security/model_signing.h"
#include "common/security/pki.h"
#include "common/security/tls_credentials.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"
#include "common/tensors/torch_tensors.h"
#include "coordinator/job/federated_job.h"
#include "coordinator/service/coordinator_server.h"
#include "site_agent/federation/coordinator_client.h"
#include "site_agent/federation/site_runner.h"
#include "tests/integration/federation_fixture.h"

namespace fedjoint {
namespace {

namespace fs = std::filesystem;
using common::tensors::TensorMap;
using integration::FakeTrainer;
using integration::FederationTest;
using integration::Values;
using integration::WaitFor;
using ::testing::HasSubstr;

// A two-value tensor (the fake network's heads), each value within 1e-5.
auto NearPair(float first, float second) {
  return ::testing::ElementsAre(::testing::FloatNear(first, 1e-5),
                                ::testing::FloatNear(second, 1e-5));
}

// Two knee sites (10 and 30 samples, deltas 1 and 2) and an ankle site (20 samples, delta 3),
// each on its own thread until the job ends.
class ThreeSitesTest : public FederationTest {
 protected:
  void RunThreeSites(FakeTrainer& a, FakeTrainer& b, FakeTrainer& c) {
    absl::Status sa, sb, sc;
    std::thread ta([&] { sa = RunSite("site-a", &a, {{"knee", 10}}); });
    std::thread tb([&] { sb = RunSite("site-b", &b, {{"knee", 30}}); });
    std::thread tc([&] { sc = RunSite("site-c", &c, {{"ankle", 20}}); });
    ta.join();
    tb.join();
    tc.join();
    ASSERT_TRUE(sa.ok()) << sa;
    ASSERT_TRUE(sb.ok()) << sb;
    ASSERT_TRUE(sc.ok()) << sc;
  }
};

TEST_F(ThreeSitesTest, TwoRoundsScopedWeightedAverage) {
  StartCoordinator(/*rounds=*/2, /*min_sites=*/3);
  FakeTrainer a("knee", 1, 10), b("knee", 2, 30), c("ankle", 3, 20);
  RunThreeSites(a, b, c);
  if (HasFatalFailure()) return;
  EXPECT_EQ(a.calls, 2);
  EXPECT_EQ(job_->finished_rounds(), 2);

  auto model =
      common::tensors::SafetensorsFile::Open(dir_ / "state/rounds/0002/global.safetensors");
  ASSERT_TRUE(model.ok()) << model.status();
  // Per round: global += (10*1 + 30*2 + 20*3) / 60; knee head += (10*1 + 30*2) / 40; ankle += 3.
  const float g = 2 * 130.f / 60.f;
  std::vector<float> conv = Values(*model, "encoder.conv.weight");
  ASSERT_EQ(conv.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(conv[i], float(i) + g, 1e-5) << i;
  EXPECT_THAT(Values(*model, "heads.knee.weight"), NearPair(10 + 3.5f, 20 + 3.5f));
  EXPECT_THAT(Values(*model, "heads.ankle.weight"), NearPair(36, 46));

  // Site-scoped tensors never reach anything the coordinator stores.
  for (const auto& entry : fs::recursive_directory_iterator(dir_ / "state")) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("norms"), std::string::npos) << entry.path();
  }
  // ...but stay at the site, trained (+1000 per round).
  auto own = common::tensors::LoadSafetensors(dir_ / "site-a/state/site/segmentation.safetensors");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_FLOAT_EQ(own->at("encoder.bn.norms.knee.running_mean")[0].item<float>(), 2000.f);
  // Each site ends with the final global model merged with its own tensors.
  auto final_a = common::tensors::LoadSafetensors(dir_ / "site-a/state/final/model.safetensors");
  ASSERT_TRUE(final_a.ok()) << final_a.status();
  EXPECT_TRUE(final_a->count("encoder.bn.norms.knee.running_mean"));
  EXPECT_NEAR(final_a->at("encoder.conv.weight")[0][0].item<float>(), g, 1e-5);

  // The round log: one line per round with the sites and their sample counts.
  std::ifstream log(dir_ / "state/rounds.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) {
    ++lines;
    auto json = nlohmann::json::parse(line);
    EXPECT_EQ(json["round"], lines);
    EXPECT_EQ(json["updates"]["site-b"]["num_samples"], 30);
    EXPECT_EQ(json["prototypes"][0]["domain"], "ankle");
    // Every site's metrics, the last uploader's too (its upload finalizes the round at once).
    for (const char* site : {"site-a", "site-b", "site-c"}) {
      ASSERT_TRUE(json["metrics"].contains(site)) << "round " << lines << ": " << site;
      EXPECT_EQ(json["metrics"][site]["loss"], 0.5) << site;
      EXPECT_TRUE(json["metrics"][site].contains("train_seconds")) << site;
    }
  }
  EXPECT_EQ(lines, 2);
}

// The phase's aggregation options: every site weighs the same ("uniform"), and the server steps
// twice as far as the average update (server_learning_rate 2).
TEST_F(ThreeSitesTest, UniformWeightingAndServerStep) {
  StartCoordinator(
      {.rounds = 1, .min_sites = 3, .weighting = "uniform", .server_learning_rate = 2.0});
  FakeTrainer a("knee", 1, 10), b("knee", 2, 30), c("ankle", 3, 20);
  RunThreeSites(a, b, c);
  if (HasFatalFailure()) return;
  auto model =
      common::tensors::SafetensorsFile::Open(dir_ / "state/rounds/0001/global.safetensors");
  ASSERT_TRUE(model.ok()) << model.status();
  // global += 2 * (1 + 2 + 3) / 3 (with samples weighting it would be 2 * 130 / 60);
  // knee head += 2 * (1 + 2) / 2; ankle head += 2 * 3.
  std::vector<float> conv = Values(*model, "encoder.conv.weight");
  ASSERT_EQ(conv.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(conv[i], float(i) + 4.f, 1e-5) << i;
  EXPECT_THAT(Values(*model, "heads.knee.weight"), NearPair(10 + 3.f, 20 + 3.f));
  EXPECT_THAT(Values(*model, "heads.ankle.weight"), NearPair(36, 46));
}

// The coordinator signs its models' metadata (job, phase, round) with the weights; a site refuses
// a validly signed model that is not the one its task needs (an older round replayed, or a model
// of another job), and accepts the right one.
TEST_F(FederationTest, AValidlySignedModelOfAnotherRoundOrJobIsRefused) {
  StartCoordinator(/*rounds=*/2, /*min_sites=*/1);
  FakeTrainer a("knee", 1, 10);
  ASSERT_TRUE(RunSite("site-a", &a, {{"knee", 10}}).ok());
  ASSERT_EQ(job_->finished_rounds(), 2);

  auto client = Client("site-a");
  auto verifier = common::security::SignatureVerifier::Load(dir_ / "pki/ca.crt");
  ASSERT_TRUE(verifier.ok());
  FakeTrainer unused("knee", 0, 10);
  site_agent::SiteRunner runner({"site-a", dir_ / "site-a/replay", {{"knee", 10}}}, client.get(),
                                std::move(*verifier), &unused);
  // A round-3 task (as if the job had a third round) naming round `model_round`'s model.
  auto task_with = [&](int model_round, const std::string& job) {
    const fs::path path =
        dir_ / "state/rounds" / absl::StrFormat("%04d", model_round) / "global.safetensors";
    auto file = common::tensors::SafetensorsFile::Open(path);
    EXPECT_TRUE(file.ok()) << file.status();
    v1::Task task;
    task.set_kind(v1::Task::TRAIN);
    task.set_job_id(job);
    task.set_phase("segmentation");
    task.set_round(3);
    task.set_model_digest(file.ok() ? file->digest() : "");
    task.set_model_bytes(int64_t(fs::file_size(path)));
    task.set_model_signature(
        *common::base::ReadSmallFile(common::security::SignaturePathFor(path)));
    return task;
  };
  auto replayed = task_with(1, "test-job");
  auto pulled = runner.PullModel("", replayed, site_agent::ExpectedStartModel(replayed));
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(pulled.status().message()),
              HasSubstr("signed fedjoint.round is '1', expected '2' or '0'"));
  auto other_job = task_with(2, "another-job");
  pulled = runner.PullModel("", other_job, site_agent::ExpectedStartModel(other_job));
  ASSERT_FALSE(pulled.ok());
  EXPECT_THAT(std::string(pulled.status().message()),
              HasSubstr("signed fedjoint.job is 'test-job', expected 'another-job'"));
  // The right model with another model's signature: the signed SHA-256 is not the file's.
  auto mismatched = task_with(2, "test-job");
  mismatched.set_model_signature(replayed.model_signature());
  pulled = runner.PullModel("", mismatched, site_agent::ExpectedStartModel(mismatched));
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss) << pulled.status();
  auto right = task_with(2, "test-job");
  pulled = runner.PullModel("", right, site_agent::ExpectedStartModel(right));
  EXPECT_TRUE(pulled.ok()) << pulled.status();
  // A cached model is checked again when reused: as the start of round 5 it is refused.
  ASSERT_TRUE(fs::exists(*pulled));
  auto later = right;
  later.set_round(5);
  pulled = runner.PullModel("", later, site_agent::ExpectedStartModel(later));
  ASSERT_FALSE(pulled.ok());
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("expected '4' or '0'"));
}

// Sends an upload stream message by message (so tests can break the protocol on purpose).
grpc::Status RawUpload(v1::Federation::Stub* stub, const v1::UploadHeader& header,
                       const std::string& payload, std::string sha256_override = "",
                       v1::UploadResponse* response_out = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::UploadResponse response;
  auto writer = stub->UploadUpdate(&context, &response);
  v1::UploadMessage m;
  *m.mutable_header() = header;
  writer->Write(m);
  for (size_t offset = 0; offset < payload.size(); offset += 100) {
    v1::UploadMessage chunk;
    chunk.mutable_chunk()->set_offset(int64_t(offset));
    chunk.mutable_chunk()->set_data(payload.substr(offset, 100));
    if (!writer->Write(chunk)) break;
  }
  v1::UploadMessage trailer;
  trailer.mutable_trailer()->set_sha256(
      sha256_override.empty() ? common::base::DigestToHex(common::base::Sha256Bytes(payload))
                              : sha256_override);
  writer->Write(trailer);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (response_out) *response_out = response;
  return status;
}

std::string Payload(TensorMap tensors) {
  auto bytes = common::tensors::SerializeSafetensors(tensors);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

TensorMap GoodUpdate() {
  return {{"encoder.conv.weight", at::ones({2, 3})}, {"heads.knee.weight", at::ones({2})}};
}

class RefusalTest : public FederationTest {
 protected:
  std::shared_ptr<grpc::Channel> Channel(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), credentials);
  }
  std::unique_ptr<v1::Federation::Stub> Stub(const std::string& cert_site) {
    auto credentials = common::security::LoadClientCredentials(
        dir_ / "pki/ca.crt", dir_ / cert_site / "pki" / (cert_site + ".crt"),
        dir_ / cert_site / "pki" / (cert_site + ".key"));
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    return v1::Federation::NewStub(Channel(*credentials));
  }
  grpc::Status Join(v1::Federation::Stub* stub, const std::string& site) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::JoinRequest request;
    request.set_version(v1::PROTOCOL_VERSION_1);
    request.set_site(site);
    auto* d = request.add_domains();
    d->set_joint("knee");
    d->set_num_samples(10);
    v1::JoinResponse response;
    return stub->Join(&context, request, &response);
  }
  v1::UploadHeader Header(int64_t round, int64_t bytes) {
    v1::UploadHeader header;
    header.set_site("site-x");
    header.set_round(round);
    header.set_num_samples(10);
    header.set_total_bytes(bytes);
    return header;
  }
};

TEST_F(RefusalTest, PeersWithoutAConsortiumCertificateOrClaimingAnotherSite) {
  StartCoordinator(1, 1);
  // No client certificate at all (server-authenticated TLS only).
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = *common::base::ReadSmallFile(dir_ / "pki/ca.crt");
  auto anonymous = v1::Federation::NewStub(Channel(grpc::SslCredentials(no_cert)));
  grpc::Status s = Join(anonymous.get(), "site-a");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();

  // A certificate from another consortium's CA.
  ASSERT_TRUE(common::security::InitPki(dir_ / "other-pki", {}).ok());
  auto request = common::security::CreateSiteRequest("site-a", dir_ / "impostor");
  ASSERT_TRUE(request.ok());
  auto issued = common::security::SignSiteRequest(dir_ / "other-pki", request->csr);
  ASSERT_TRUE(issued.ok());
  auto foreign_credentials = common::security::LoadClientCredentials(
      dir_ / "pki/ca.crt", dir_ / "other-pki" / issued->file, request->key);
  // Loading already refuses a certificate that does not chain to our CA; force it on the wire.
  if (foreign_credentials.ok()) {
    auto foreign = v1::Federation::NewStub(Channel(*foreign_credentials));
    EXPECT_EQ(Join(foreign.get(), "site-a").error_code(), grpc::StatusCode::UNAVAILABLE);
  } else {
    grpc::SslCredentialsOptions raw;
    raw.pem_root_certs = *common::base::ReadSmallFile(dir_ / "pki/ca.crt");
    raw.pem_cert_chain = *common::base::ReadSmallFile(dir_ / "other-pki" / issued->file);
    raw.pem_private_key = *common::base::ReadSmallFile(request->key);
    auto foreign = v1::Federation::NewStub(Channel(grpc::SslCredentials(raw)));
    EXPECT_EQ(Join(foreign.get(), "site-a").error_code(), grpc::StatusCode::UNAVAILABLE);
  }

  // A real site claiming another site's identity.
  auto a = Stub("site-a");
  s = Join(a.get(), "site-b");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(
      s.error_message(),
      "the client certificate identifies site 'site-a', but the request claims site 'site-b'");
  EXPECT_TRUE(Join(a.get(), "site-a").ok());

  // A revoked site is refused without restarting the coordinator.
  auto c = Stub("site-c");
  EXPECT_TRUE(Join(c.get(), "site-c").ok());
  ASSERT_TRUE(common::security::RevokeSite(dir_ / "pki", "site-c").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  s = Join(c.get(), "site-c");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.error_message(), HasSubstr("revoked"));
  auto fresh = Stub("site-c");
  EXPECT_FALSE(Join(fresh.get(), "site-c").ok()) << "new connections are refused too";
}

TEST_F(RefusalTest, MalformedHostileStaleAndDuplicateUpdates) {
  StartCoordinator(1, 1);
  auto x = Stub("site-x");
  ASSERT_TRUE(Join(x.get(), "site-x").ok());
  // Wait for round 1 to open.
  v1::Task task;
  for (int i = 0; i < 50 && task.kind() != v1::Task::TRAIN; ++i) {
    grpc::ClientContext context;
    v1::TaskRequest request;
    request.set_site("site-x");
    ASSERT_TRUE(x->GetTask(&context, request, &task).ok());
  }
  ASSERT_EQ(task.kind(), v1::Task::TRAIN);
  ASSERT_EQ(task.round(), 1);

  auto expect = [&](TensorMap tensors, grpc::StatusCode code, const std::string& message,
                    int64_t round = 1) {
    std::string payload = Payload(std::move(tensors));
    grpc::Status s = RawUpload(x.get(), Header(round, int64_t(payload.size())), payload);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(message));
  };
  TensorMap site_scoped = GoodUpdate();
  site_scoped["encoder.bn.norms.knee.running_mean"] = at::zeros({2});
  expect(site_scoped, grpc::StatusCode::INVALID_ARGUMENT,
         "tensor 'encoder.bn.norms.knee.running_mean' is not a shared parameter of this round");
  TensorMap wrong_shape = GoodUpdate();
  wrong_shape["encoder.conv.weight"] = at::ones({3, 2});
  expect(wrong_shape, grpc::StatusCode::INVALID_ARGUMENT,
         "tensor 'encoder.conv.weight' has shape [3, 2], expected [2, 3]");
  TensorMap nan = GoodUpdate();
  nan["heads.knee.weight"] = at::full({2}, NAN);
  expect(nan, grpc::StatusCode::INVALID_ARGUMENT,
         "tensor 'heads.knee.weight' contains NaN or infinite values");
  expect(GoodUpdate(), grpc::StatusCode::FAILED_PRECONDITION,
         "refused: stale round (round 0 is finished)", /*round=*/0);

  // The transfer digest must match the bytes.
  std::string payload = Payload(GoodUpdate());
  grpc::Status s =
      RawUpload(x.get(), Header(1, int64_t(payload.size())), payload, std::string(64, '0'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(s.error_message(), HasSubstr("transfer digest mismatch"));
  // Larger than the coordinator accepts (1 MiB here), declared or actually streamed.
  s = RawUpload(x.get(), Header(1, 2 << 20), payload);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("outside 1..1048576"));
  s = RawUpload(x.get(), Header(1, 100), payload);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("stream exceeds 100 bytes"));

  // Nothing above counted; a good update is accepted once, a second one is a duplicate.
  v1::UploadResponse response;
  s = RawUpload(x.get(), Header(1, int64_t(payload.size())), payload, "", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(response.accepted());
  s = RawUpload(x.get(), Header(1, int64_t(payload.size())), payload);
  EXPECT_THAT(s.error_message(),
              ::testing::AnyOf(HasSubstr("duplicate"), HasSubstr("stale round")));
  // The round finalized with exactly that update: the global model is its average (itself).
  for (int i = 0; i < 100 && job_->finished_rounds() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto model =
      common::tensors::SafetensorsFile::Open(dir_ / "state/rounds/0001/global.safetensors");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(Values(*model, "encoder.conv.weight"), ::testing::Each(1.f));
  // The ankle head had no contributor: it keeps its initial value.
  EXPECT_THAT(Values(*model, "heads.ankle.weight"), ::testing::ElementsAre(30.f, 40.f));
}

// The phase's max_update_norm (from the config) bounds how far an update may move the model.
TEST_F(RefusalTest, UpdateFartherThanThePhasesNormBoundIsRefused) {
  StartCoordinator({.rounds = 1, .min_sites = 1, .max_update_norm = 5});
  auto x = Stub("site-x");
  ASSERT_TRUE(Join(x.get(), "site-x").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext context;
        v1::TaskRequest request;
        request.set_site("site-x");
        v1::Task task;
        return x->GetTask(&context, request, &task).ok() && task.kind() == v1::Task::TRAIN;
      },
      10));
  // Start: conv 0..5, knee head (10, 20). +100 everywhere is far outside a bound of 5.
  TensorMap far = {{"encoder.conv.weight", at::arange(6, at::kFloat).view({2, 3}) + 100},
                   {"heads.knee.weight", at::tensor({110.f, 120.f})}};
  std::string payload = Payload(far);
  grpc::Status s = RawUpload(x.get(), Header(1, int64_t(payload.size())), payload);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("update from site 'site-x'"));
  EXPECT_THAT(s.error_message(), HasSubstr("exceeds the bound of 5"));
  // A small step (norm sqrt(8) * 1 < 5) is accepted.
  TensorMap near = {{"encoder.conv.weight", at::arange(6, at::kFloat).view({2, 3}) + 1},
                    {"heads.knee.weight", at::tensor({11.f, 21.f})}};
  payload = Payload(near);
  s = RawUpload(x.get(), Header(1, int64_t(payload.size())), payload);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// A handshake refused for a certificate reason is not an outage: the site's Join gives up at once
// with the reason, instead of retrying "not reachable" forever. A closed port is still retried.
TEST_F(RefusalTest, JoinGivesUpOnATlsRefusalButRetriesAnOutage) {
  StartCoordinator(1, 1);
  auto client_with = [&](std::shared_ptr<grpc::ChannelCredentials> credentials, int port) {
    site_agent::ClientOptions options;
    options.site = "site-a";
    options.target = "127.0.0.1:" + std::to_string(port);
    options.max_attempts = 12;  // ~3 s of backoff: long enough to tell "gave up" from "retried"
    options.backoff_initial_s = 0.05;
    options.backoff_max_s = 0.3;
    options.reconnect_backoff_max_s = 0.3;
    return std::make_unique<site_agent::CoordinatorClient>(options, credentials);
  };
  v1::JoinRequest join;
  join.set_version(v1::PROTOCOL_VERSION_1);
  join.set_site("site-a");
  auto* d = join.add_domains();
  d->set_joint("knee");
  d->set_num_samples(10);
  // Returns the error message.
  auto expect_refusal = [&](site_agent::CoordinatorClient& client, const std::string& what) {
    const auto started = std::chrono::steady_clock::now();
    auto joined = client.Join(join);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_FALSE(joined.ok()) << what;
    if (joined.ok()) return std::string();
    EXPECT_EQ(joined.status().code(), absl::StatusCode::kUnauthenticated)
        << what << ": " << joined.status();
    EXPECT_THAT(std::string(joined.status().message()),
                HasSubstr("join 127.0.0.1:" + std::to_string(port_) + ": the TLS handshake"))
        << what;
    EXPECT_LT(took, 3.0) << what << ": retried instead of giving up";
    return std::string(joined.status().message());
  };
  auto raw = [&](const fs::path& ca, const fs::path& cert, const fs::path& key) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = *common::base::ReadSmallFile(ca);
    options.pem_cert_chain = *common::base::ReadSmallFile(cert);
    options.pem_private_key = *common::base::ReadSmallFile(key);
    return grpc::SslCredentials(options);
  };

  // A client certificate from another consortium's CA.
  ASSERT_TRUE(common::security::InitPki(dir_ / "other-pki", {}).ok());
  auto request = common::security::CreateSiteRequest("site-a", dir_ / "impostor");
  ASSERT_TRUE(request.ok());
  auto issued = common::security::SignSiteRequest(dir_ / "other-pki", request->csr);
  ASSERT_TRUE(issued.ok());
  auto foreign =
      client_with(raw(dir_ / "pki/ca.crt", dir_ / "other-pki" / issued->file, request->key), port_);
  expect_refusal(*foreign, "foreign client certificate");

  // The site trusts another CA than the coordinator's (tls.ca_cert is not the consortium's).
  auto wrong_ca = client_with(raw(dir_ / "other-pki/ca.crt", dir_ / "site-a/pki/site-a.crt",
                                  dir_ / "site-a/pki/site-a.key"),
                              port_);
  // This side refuses the coordinator's certificate: gRPC names the reason, no retry at all.
  EXPECT_THAT(expect_refusal(*wrong_ca, "coordinator certificate from another CA"),
              HasSubstr("certificate verify failed"));

  // A revoked site (a new connection: refused at the handshake).
  ASSERT_TRUE(common::security::RevokeSite(dir_ / "pki", "site-c").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto revoked = client_with(
      raw(dir_ / "pki/ca.crt", dir_ / "site-c/pki/site-c.crt", dir_ / "site-c/pki/site-c.key"),
      port_);
  expect_refusal(*revoked, "revoked client certificate");

  // Nobody listening: an outage, retried until max_attempts, then UNAVAILABLE.
  const int closed_port = port_;
  server_->Shutdown();
  server_.reset();
  auto outage = client_with(
      raw(dir_ / "pki/ca.crt", dir_ / "site-a/pki/site-a.crt", dir_ / "site-a/pki/site-a.key"),
      closed_port);
  auto joined = outage->Join(join);
  ASSERT_FALSE(joined.ok());
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kUnavailable) << joined.status();
}

// A task may slice the site's scans differently from the site's own config (the count declared at
// join): an update is never refused for claiming more slices than declared; it claims at most
// the declaration.
TEST_F(FederationTest, UpdateCountAboveTheDeclarationIsCappedNotRefused) {
  StartCoordinator(/*rounds=*/1, /*min_sites=*/1);
  FakeTrainer a("knee", 1, /*samples=*/50);
  absl::Status s = RunSite("site-a", &a, {{"knee", 10}});
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(a.calls, 1) << "the first update was accepted";
  auto log = integration::RoundLog(dir_ / "state");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["updates"]["site-a"]["num_samples"], 10);
}

}  // namespace
}  // namespace fedjoint
