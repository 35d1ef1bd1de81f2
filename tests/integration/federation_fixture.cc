#include "tests/integration/federation_fixture.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "common/log/logging.h"
#include "common/security/pki.h"
#include "common/security/tls_credentials.h"

namespace fedjoint::integration {

namespace fs = std::filesystem;
using common::tensors::TensorMap;

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

absl::StatusOr<TensorMap> FakeTrainer::InitialSiteTensors(const v1::Task&) {
  return TensorMap{{"encoder.bn.norms." + joint_ + ".running_mean", at::zeros({2})}};
}

absl::StatusOr<site_agent::TrainResult> FakeTrainer::Train(site_agent::TrainRequest request) {
  const int call = ++calls;
  deadline_and_train_until.emplace_back(request.task.deadline_unix_s(), request.train_until_unix_s);
  if (on_train) on_train(call);
  const float delta = delta_for ? delta_for(call) : delta_;
  site_agent::TrainResult result;
  for (auto& [name, t] : request.weights) {
    bool site_scoped = name.find("norms") != std::string::npos;
    result.weights[name] = t + (site_scoped ? 1000.f : delta);
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

void FederationTest::SetUpTestSuite() {
  (void)common::log::Setup({"warn", common::log::Format::kHuman});
}

void FederationTest::SetUp() {
  dir_ =
      fs::temp_directory_path() / ("fedjoint_fed_" + std::to_string(::getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir_);
  ASSERT_TRUE(common::security::InitPki(dir_ / "pki", {}).ok());
  for (const char* site : {"site-a", "site-b", "site-c", "site-x"}) {
    auto request = common::security::CreateSiteRequest(site, dir_ / site / "pki");
    ASSERT_TRUE(request.ok()) << request.status();
    auto issued = common::security::SignSiteRequest(dir_ / "pki", request->csr);
    ASSERT_TRUE(issued.ok()) << issued.status();
    // The operator sends the certificate back; the key never left the site's folder.
    fs::copy_file(dir_ / "pki" / issued->file, dir_ / site / "pki" / (std::string(site) + ".crt"));
  }
}

void FederationTest::TearDown() {
  if (server_) server_->Shutdown();
  fs::remove_all(dir_);
}

void FederationTest::CreateJob(const CoordinatorSetup& setup) {
  coordinator::JobOptions options;
  options.job_id = "test-job";
  options.orchestrator.min_sites = setup.min_sites;
  options.orchestrator.min_updates = setup.min_updates < 0 ? setup.min_sites : setup.min_updates;
  options.orchestrator.round_deadline_s = setup.deadline_s;
  options.phases = {Phase(setup.rounds)};
  options.phases[0].set_max_update_norm(setup.max_update_norm);
  options.phases[0].set_weighting(setup.weighting);
  options.phases[0].set_server_learning_rate(setup.server_learning_rate);
  options.max_update_bytes = 1 << 20;
  auto signer =
      common::security::ModelSigner::Load(dir_ / "pki/signing.key", dir_ / "pki/signing.crt");
  ASSERT_TRUE(signer.ok()) << signer.status();
  auto job = coordinator::FederatedJob::Create(
      options, dir_ / "state", std::make_shared<common::security::ModelSigner>(std::move(*signer)),
      InitialModel, coordinator::SystemClockSeconds());
  ASSERT_TRUE(job.ok()) << job.status();
  job_ = std::move(*job);
}

void FederationTest::StartCoordinator(CoordinatorSetup setup) {
  CreateJob(setup);
  if (::testing::Test::HasFatalFailure()) return;
  revocations_ = *common::security::RevocationList::Load(
      dir_ / "pki/crl.pem", dir_ / "pki/ca.crt",
      common::security::RevocationList::Options{std::chrono::milliseconds(10)});
  auto credentials = common::security::LoadServerCredentials(
      dir_ / "pki/ca.crt", dir_ / "pki/server.crt", dir_ / "pki/server.key", revocations_);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  coordinator::ServerOptions server_options;
  server_options.listen_address = "127.0.0.1:" + std::to_string(setup.port);
  server_options.service.task_poll_s = 1;
  server_options.service.chunk_bytes = 64;  // many chunks even for a tiny model
  auto server =
      coordinator::CoordinatorServer::Start(job_.get(), *credentials, revocations_, server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  port_ = server_->port();
}

void FederationTest::KillCoordinator() {
  server_.reset();
  job_.reset();
}

std::unique_ptr<site_agent::CoordinatorClient> FederationTest::Client(
    const std::string& site, const std::string& cert_site) {
  const std::string who = cert_site.empty() ? site : cert_site;
  auto credentials = common::security::LoadClientCredentials(dir_ / "pki/ca.crt",
                                                             dir_ / who / "pki" / (who + ".crt"),
                                                             dir_ / who / "pki" / (who + ".key"));
  EXPECT_TRUE(credentials.ok()) << credentials.status();
  if (!credentials.ok()) return nullptr;
  return std::make_unique<site_agent::CoordinatorClient>(ClientOptionsFor(site), *credentials);
}

site_agent::ClientOptions FederationTest::ClientOptionsFor(const std::string& site) const {
  site_agent::ClientOptions options;
  options.site = site;
  options.target = "127.0.0.1:" + std::to_string(port_);
  options.task_poll_s = 1;
  options.chunk_bytes = 100;
  options.max_attempts = client_max_attempts_;
  options.backoff_initial_s = 0.05;
  options.backoff_max_s = 0.3;
  options.reconnect_backoff_max_s = 0.3;
  return options;
}

absl::Status FederationTest::RunSite(const std::string& site, FakeTrainer* trainer,
                                     std::map<std::string, int64_t> samples) {
  auto client = Client(site);
  if (!client) return absl::InternalError("no client credentials for " + site);
  return RunSiteWith(client.get(), site, trainer, std::move(samples));
}

absl::Status FederationTest::RunSiteWith(site_agent::CoordinatorClient* client,
                                         const std::string& site, FakeTrainer* trainer,
                                         std::map<std::string, int64_t> samples) {
  auto verifier = common::security::SignatureVerifier::Load(dir_ / "pki/ca.crt");
  if (!verifier.ok()) return verifier.status();
  site_agent::SiteRunner runner({site, dir_ / site / "state", std::move(samples)}, client,
                                std::move(*verifier), trainer);
  return runner.Run();
}

std::vector<float> Values(const common::tensors::SafetensorsFile& file, const std::string& name) {
  auto span = file.DataAs<float>(name);
  EXPECT_TRUE(span.ok()) << span.status();
  return span.ok() ? std::vector<float>(span->begin(), span->end()) : std::vector<float>();
}

std::vector<nlohmann::json> RoundLog(const fs::path& state_dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(state_dir / "rounds.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto json = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << "torn line in rounds.jsonl: " << line;
    if (!json.is_discarded()) lines.push_back(std::move(json));
  }
  return lines;
}

bool WaitFor(const std::function<bool()>& done, double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace fedjoint::integration
