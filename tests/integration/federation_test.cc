// A real federation on loopback: the coordinator's gRPC server with mutual TLS on 127.0.0.1:0,
// a consortium PKI created at test time, and site agents with small fake trainers (the
// federation is what is under test here, not the network being trained).
#include <ATen/ATen.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "common/log/logging.h"
#include "common/security/pki.h"
#include "common/security/tls_credentials.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"
#include "common/tensors/torch_tensors.h"
#include "coordinator/job/federated_job.h"
#include "coordinator/service/coordinator_server.h"
#include "site_agent/federation/coordinator_client.h"
#include "site_agent/federation/site_runner.h"

namespace fedjoint {
namespace {

namespace fs = std::filesystem;
using common::tensors::TensorMap;
using ::testing::HasSubstr;

// The fake network: one global conv, a head per joint, site-scoped norms per joint.
std::vector<coordinator::OwnedTensor> InitialModel(const v1::PhaseConfig&) {
  return {{"encoder.conv.weight", {2, 3}, {0, 1, 2, 3, 4, 5}},
          {"heads.knee.weight", {2}, {10, 20}},
          {"heads.ankle.weight", {2}, {30, 40}},
          {"encoder.bn.norms.knee.running_mean", {2}, {0, 0}},
          {"encoder.bn.norms.ankle.running_mean", {2}, {0, 0}}};
}

v1::PhaseConfig Phase(int rounds) {
  v1::PhaseConfig phase;
  phase.set_name("segmentation");
  phase.set_rounds(rounds);
  for (const char* joint : {"knee", "ankle"}) {
    auto* j = phase.mutable_model()->add_joints();
    j->set_name(joint);
    j->add_structures("bone");
  }
  for (auto [pattern, scope] : std::vector<std::pair<const char*, const char*>>{
           {"*norms*", "site"}, {"heads.*", "domain"}, {"*", "global"}}) {
    auto* rule = phase.add_scopes();
    rule->set_pattern(pattern);
    rule->set_scope(scope);
  }
  return phase;
}

// Adds `delta` to every tensor it receives; site-scoped tensors get a recognisable +1000 so a
// leak would show in anything the coordinator stores.
class FakeTrainer : public site_agent::LocalTrainer {
 public:
  FakeTrainer(std::string joint, float delta, int64_t samples)
      : joint_(std::move(joint)), delta_(delta), samples_(samples) {}

  absl::StatusOr<TensorMap> InitialSiteTensors(const v1::Task&) override {
    return TensorMap{{"encoder.bn.norms." + joint_ + ".running_mean", at::zeros({2})}};
  }
  absl::StatusOr<site_agent::TrainResult> Train(site_agent::TrainRequest request) override {
    ++calls;
    site_agent::TrainResult result;
    for (auto& [name, t] : request.weights) {
      bool site_scoped = name.find("norms") != std::string::npos;
      result.weights[name] = t + (site_scoped ? 1000.f : delta_);
    }
    result.num_samples = samples_;
    v1::Prototype p;
    p.set_domain(joint_);
    p.set_scale(0);
    p.add_values(1);
    p.add_values(0);
    p.set_count(samples_);
    result.prototypes.push_back(p);
    result.metrics["loss"] = 0.5;
    if (request.on_progress) request.on_progress(1.0);
    return result;
  }
  std::atomic<int> calls{0};

 private:
  std::string joint_;
  float delta_;
  int64_t samples_;
};

class FederationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { (void)common::log::Setup({"warn", common::log::Format::kHuman}); }
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fedjoint_fed_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ASSERT_TRUE(common::security::InitPki(dir_ / "pki", {}).ok());
    for (const char* site : {"site-a", "site-b", "site-c", "site-x"}) {
      auto request = common::security::CreateSiteRequest(site, dir_ / site / "pki");
      ASSERT_TRUE(request.ok()) << request.status();
      auto issued = common::security::SignSiteRequest(dir_ / "pki", request->csr);
      ASSERT_TRUE(issued.ok()) << issued.status();
      // The operator sends the certificate back; the key never left the site's folder.
      fs::copy_file(dir_ / "pki" / issued->file,
                    dir_ / site / "pki" / (std::string(site) + ".crt"));
    }
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    fs::remove_all(dir_);
  }

  void StartCoordinator(int rounds, int min_sites, double deadline_s = 60) {
    coordinator::JobOptions options;
    options.job_id = "test-job";
    options.orchestrator.min_sites = min_sites;
    options.orchestrator.min_updates = min_sites;
    options.orchestrator.round_deadline_s = deadline_s;
    options.phases = {Phase(rounds)};
    options.max_update_bytes = 1 << 20;
    auto signer =
        common::security::ModelSigner::Load(dir_ / "pki/signing.key", dir_ / "pki/signing.crt");
    ASSERT_TRUE(signer.ok()) << signer.status();
    auto job = coordinator::FederatedJob::Create(
        options, dir_ / "state",
        std::make_shared<common::security::ModelSigner>(std::move(*signer)), InitialModel,
        coordinator::NowSeconds());
    ASSERT_TRUE(job.ok()) << job.status();
    job_ = std::move(*job);
    revocations_ = *common::security::RevocationList::Load(
        dir_ / "pki/crl.pem", dir_ / "pki/ca.crt",
        common::security::RevocationList::Options{std::chrono::milliseconds(10)});
    auto credentials = common::security::LoadServerCredentials(
        dir_ / "pki/ca.crt", dir_ / "pki/server.crt", dir_ / "pki/server.key", revocations_);
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    coordinator::ServerOptions server_options;
    server_options.listen_address = "127.0.0.1:0";
    server_options.service.task_poll_s = 1;
    server_options.service.chunk_bytes = 64;  // many chunks even for a tiny model
    auto server = coordinator::CoordinatorServer::Start(job_.get(), *credentials, revocations_,
                                                        server_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::unique_ptr<site_agent::CoordinatorClient> Client(const std::string& site,
                                                        const std::string& cert_site = "") {
    const std::string who = cert_site.empty() ? site : cert_site;
    auto credentials = common::security::LoadClientCredentials(dir_ / "pki/ca.crt",
                                                               dir_ / who / "pki" / (who + ".crt"),
                                                               dir_ / who / "pki" / (who + ".key"));
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    if (!credentials.ok()) return nullptr;
    site_agent::ClientOptions options;
    options.site = site;
    options.target = "127.0.0.1:" + std::to_string(server_->port());
    options.task_poll_s = 1;
    options.chunk_bytes = 100;
    options.max_attempts = 3;
    options.backoff_initial_s = 0.05;
    return std::make_unique<site_agent::CoordinatorClient>(options, *credentials);
  }

  absl::Status RunSite(const std::string& site, FakeTrainer* trainer,
                       std::map<std::string, int64_t> samples) {
    auto client = Client(site);
    if (!client) return absl::InternalError("no client credentials for " + site);
    auto verifier = common::security::SignatureVerifier::Load(dir_ / "pki/ca.crt");
    if (!verifier.ok()) return verifier.status();
    site_agent::SiteRunner runner({site, dir_ / site / "state", std::move(samples)}, client.get(),
                                  std::move(*verifier), trainer);
    return runner.Run();
  }

  fs::path dir_;
  std::unique_ptr<coordinator::FederatedJob> job_;
  std::shared_ptr<common::security::RevocationList> revocations_;
  std::unique_ptr<coordinator::CoordinatorServer> server_;
};

std::vector<float> Values(const common::tensors::SafetensorsFile& file, const std::string& name) {
  auto span = file.DataAs<float>(name);
  EXPECT_TRUE(span.ok()) << span.status();
  return span.ok() ? std::vector<float>(span->begin(), span->end()) : std::vector<float>();
}

TEST_F(FederationTest, ThreeSitesTwoRoundsScopedWeightedAverage) {
  StartCoordinator(/*rounds=*/2, /*min_sites=*/3);
  FakeTrainer a("knee", 1, 10), b("knee", 2, 30), c("ankle", 3, 20);
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
  EXPECT_THAT(Values(*model, "heads.knee.weight"),
              ::testing::ElementsAre(::testing::FloatNear(10 + 3.5f, 1e-5),
                                     ::testing::FloatNear(20 + 3.5f, 1e-5)));
  EXPECT_THAT(
      Values(*model, "heads.ankle.weight"),
      ::testing::ElementsAre(::testing::FloatNear(36, 1e-5), ::testing::FloatNear(46, 1e-5)));

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
  }
  EXPECT_EQ(lines, 2);
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
      sha256_override.empty()
          ? common::security::DigestToHex(common::security::Sha256Bytes(payload))
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

}  // namespace
}  // namespace fedjoint
