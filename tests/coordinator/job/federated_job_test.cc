// FederatedJob without a network: sites join, take tasks and upload through the job's own
// interface, with a fake initial model and a real signer, and the test reads what it published.
#include "coordinator/job/federated_job.h"

#include <unistd.h>

#include <cmath>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/base/sha256.h"
#include "common/security/pki.h"
#include "common/tensors/safetensors_writer.h"

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;
namespace tensors = common::tensors;
using ::testing::HasSubstr;

// One knee phase of `rounds` rounds; a global encoder tensor, a knee head and a knee norm.
fedjoint::v1::PhaseConfig Phase(int rounds, const std::string& weighting) {
  fedjoint::v1::PhaseConfig phase;
  phase.set_name("seg");
  phase.set_rounds(rounds);
  phase.set_weighting(weighting);
  phase.set_server_learning_rate(1.0);
  phase.mutable_model()->set_architecture("unet_resnet");
  phase.mutable_model()->add_joints()->set_name("knee");
  for (auto [pattern, scope] :
       {std::pair{"*.norms.*", "site"}, {"heads.*", "domain"}, {"*", "global"}}) {
    auto* rule = phase.add_scopes();
    rule->set_pattern(pattern);
    rule->set_scope(scope);
  }
  return phase;
}

absl::StatusOr<std::vector<OwnedTensor>> FakeInitialModel(const fedjoint::v1::PhaseConfig&) {
  return std::vector<OwnedTensor>{{"encoder.w", {2}, {0, 0}},
                                  {"encoder.bn.norms.knee.w", {1}, {5}},
                                  {"heads.knee.w", {1}, {0}}};
}

class FederatedJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fedjoint_job_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ASSERT_TRUE(common::security::InitPki(dir_ / "pki", {}).ok());
    auto signer =
        common::security::ModelSigner::Load(dir_ / "pki/signing.key", dir_ / "pki/signing.crt");
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = std::make_shared<common::security::ModelSigner>(std::move(*signer));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<FederatedJob> MakeJob(const std::string& weighting = "uniform", int rounds = 1,
                                        const std::string& server_optimizer = "sgd") {
    JobOptions options;
    options.job_id = "job-1";
    options.orchestrator.min_sites = 2;
    options.orchestrator.min_updates = 2;
    options.orchestrator.round_deadline_s = 100;
    options.phases = {Phase(rounds, weighting)};
    options.phases[0].set_server_optimizer(server_optimizer);
    auto job = FederatedJob::Create(options, dir_ / "state", signer_, FakeInitialModel, kT0);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? std::move(*job) : nullptr;
  }

  static void Join(FederatedJob& job, const std::string& site, int64_t samples) {
    fedjoint::v1::JoinRequest request;
    request.set_version(fedjoint::v1::PROTOCOL_VERSION_1);
    request.set_site(site);
    auto* domain = request.add_domains();
    domain->set_joint("knee");
    domain->set_num_samples(samples);
    ASSERT_TRUE(job.Join(site, request, kT0).ok());
  }

  // Sends an update (encoder.w = {e, e}, heads.knee.w = {h}) in two chunks; returns the result.
  static absl::StatusOr<std::string> Upload(FederatedJob& job, const std::string& site,
                                            int64_t round, int64_t samples, float e, float h,
                                            double now, bool corrupt_trailer = false) {
    std::vector<float> enc = {e, e}, head = {h};
    std::vector<tensors::TensorRef> refs = {
        {"encoder.w", tensors::DType::kF32, {2}, std::as_bytes(std::span<const float>(enc))},
        {"heads.knee.w", tensors::DType::kF32, {1}, std::as_bytes(std::span<const float>(head))}};
    auto bytes = tensors::SerializeSafetensors(refs);
    if (!bytes.ok()) return bytes.status();
    fedjoint::v1::UploadHeader header;
    header.set_site(site);
    header.set_round(round);
    header.set_phase("seg");
    header.set_num_samples(samples);
    header.set_total_bytes(int64_t(bytes->size()));
    auto sink = job.BeginUpload(site, header, now);
    if (!sink.ok()) return sink.status();
    const size_t half = bytes->size() / 2;
    if (auto s = (*sink)->Append(0, std::string_view(*bytes).substr(0, half)); !s.ok()) return s;
    if (auto s = (*sink)->Append(int64_t(half), std::string_view(*bytes).substr(half)); !s.ok()) {
      return s;
    }
    std::string sha = common::base::DigestToHex(common::base::Sha256Bytes(*bytes));
    if (corrupt_trailer) sha[0] = sha[0] == '0' ? '1' : '0';
    return job.FinishUpload(std::move(*sink), sha, now);
  }

  // Sites a (10 slices) and b (30) join; round 1 runs with updates a = (1, 2), b = (3, 4).
  static void RunFirstRound(FederatedJob& job) {
    Join(job, "a", 10);
    Join(job, "b", 30);
    ASSERT_TRUE(job.Tick(kT0 + 1).ok());
    ASSERT_TRUE(Upload(job, "a", 1, 10, 1, 2, kT0 + 2).ok());
    ASSERT_TRUE(Upload(job, "b", 1, 30, 3, 4, kT0 + 3).ok());
    ASSERT_TRUE(job.Tick(kT0 + 4).ok());
  }

  // The published model of the latest round, by tensor name.
  std::map<std::string, std::vector<float>> Latest(FederatedJob& job) {
    std::map<std::string, std::vector<float>> out;
    auto latest = job.LatestModel();
    EXPECT_TRUE(latest.ok()) << latest.status();
    if (!latest.ok()) return out;
    auto model = job.FindModel(latest->digest());
    EXPECT_TRUE(model.ok());
    auto file = tensors::SafetensorsFile::Open(model->path);
    EXPECT_TRUE(file.ok()) << file.status();
    for (const auto& info : file->tensors()) {
      auto values = file->DataAs<float>(info.name);
      out[info.name].assign(values->begin(), values->end());
    }
    return out;
  }

  static constexpr double kT0 = 1000;
  fs::path dir_;
  std::shared_ptr<common::security::ModelSigner> signer_;
};

TEST_F(FederatedJobTest, ARoundAveragesTheSharedTensorsAndKeepsTheSiteScopedOnesOut) {
  auto job = MakeJob("uniform");
  ASSERT_TRUE(job);
  Join(*job, "a", 10);
  Join(*job, "b", 30);
  ASSERT_TRUE(job->Tick(kT0 + 1).ok());
  auto task = job->TaskFor("a", kT0 + 1);
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_EQ(task->kind(), fedjoint::v1::Task::TRAIN);
  EXPECT_EQ(task->round(), 1);
  EXPECT_EQ(task->phase_round(), 1);
  EXPECT_EQ(task->phase_rounds(), 1);
  EXPECT_EQ(task->scopes_size(), 3);

  ASSERT_TRUE(Upload(*job, "a", 1, 10, 1, 2, kT0 + 2).ok());
  ASSERT_TRUE(Upload(*job, "b", 1, 30, 3, 4, kT0 + 3).ok());
  ASSERT_TRUE(job->Tick(kT0 + 4).ok());
  EXPECT_EQ(job->finished_rounds(), 1);
  auto model = Latest(*job);
  EXPECT_EQ(model["encoder.w"], (std::vector<float>{2, 2}));
  EXPECT_EQ(model["heads.knee.w"], (std::vector<float>{3}));
  EXPECT_FALSE(model.count("encoder.bn.norms.knee.w")) << "site-scoped tensors never leave";

  // The round's times are the caller's clock, not the machine's.
  std::ifstream state(dir_ / "state" / "state.json");
  nlohmann::json json = nlohmann::json::parse(state);
  EXPECT_DOUBLE_EQ(json["last_round_record"]["opened_unix_s"].get<double>(), kT0 + 1);
  EXPECT_GE(json["last_round_record"]["finished_unix_s"].get<double>(), kT0 + 4);
  EXPECT_LT(json["last_round_record"]["finished_unix_s"].get<double>(), kT0 + 64);
}

TEST_F(FederatedJobTest, SampleWeightingWeighsByTheSlicesASiteTrainedOn) {
  auto job = MakeJob("samples");
  ASSERT_TRUE(job);
  RunFirstRound(*job);
  auto model = Latest(*job);
  EXPECT_EQ(model["encoder.w"], (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(model["heads.knee.w"], (std::vector<float>{3.5f}));
}

TEST_F(FederatedJobTest, RefusedUpdatesLeaveNoTraceAndTheSiteMayRetry) {
  auto job = MakeJob("uniform");
  ASSERT_TRUE(job);
  Join(*job, "a", 10);
  Join(*job, "b", 30);
  ASSERT_TRUE(job->Tick(kT0 + 1).ok());
  auto bad_sha = Upload(*job, "a", 1, 10, 100, 100, kT0 + 2, /*corrupt_trailer=*/true);
  ASSERT_FALSE(bad_sha.ok());
  EXPECT_THAT(bad_sha.status().message(), HasSubstr("transfer digest mismatch"));
  auto nan = Upload(*job, "a", 1, 10, std::nanf(""), 1, kT0 + 2);
  ASSERT_FALSE(nan.ok());
  EXPECT_THAT(nan.status().message(), HasSubstr("update from site 'a'"));
  auto wrong_round = Upload(*job, "a", 7, 10, 1, 2, kT0 + 2);
  EXPECT_FALSE(wrong_round.ok());

  ASSERT_TRUE(Upload(*job, "a", 1, 10, 1, 2, kT0 + 3).ok());
  ASSERT_TRUE(Upload(*job, "b", 1, 30, 3, 4, kT0 + 3).ok());
  ASSERT_TRUE(job->Tick(kT0 + 4).ok());
  EXPECT_EQ(Latest(*job)["encoder.w"], (std::vector<float>{2, 2}));
  // No spool file is left behind.
  for (const auto& entry : fs::directory_iterator(dir_ / "state" / "uploads")) {
    ADD_FAILURE() << "left over: " << entry.path();
  }
}

TEST_F(FederatedJobTest, ARestartedJobResumesAfterTheLastCommittedRound) {
  {
    auto job = MakeJob("uniform", /*rounds=*/2);
    ASSERT_TRUE(job);
    RunFirstRound(*job);
    ASSERT_EQ(job->finished_rounds(), 1);
  }
  auto job = MakeJob("uniform", /*rounds=*/2);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->finished_rounds(), 1);
  EXPECT_EQ(Latest(*job)["encoder.w"], (std::vector<float>{2, 2}));
  Join(*job, "a", 10);
  Join(*job, "b", 30);
  ASSERT_TRUE(job->Tick(kT0 + 10).ok());
  auto task = job->TaskFor("b", kT0 + 10);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->round(), 2) << "round 2 starts from round 1's model";
  EXPECT_EQ(task->phase_round(), 2);
  EXPECT_EQ(task->phase_rounds(), 2);
  EXPECT_EQ(task->model_digest(), job->LatestModel()->digest());
}

TEST_F(FederatedJobTest, FedAvgMomentumKeepsItsVelocityAcrossARestart) {
  {
    auto job = MakeJob("uniform", /*rounds=*/2, "momentum");
    ASSERT_TRUE(job);
    RunFirstRound(*job);  // d = average (2, 2) - start (0, 0): m = d, the model is the average
    EXPECT_EQ(Latest(*job)["encoder.w"], (std::vector<float>{2, 2}));
    EXPECT_TRUE(fs::exists(dir_ / "state/rounds/0001/server_state.safetensors"));
  }
  auto job = MakeJob("uniform", /*rounds=*/2, "momentum");  // a restarted coordinator
  ASSERT_TRUE(job);
  Join(*job, "a", 10);
  Join(*job, "b", 30);
  ASSERT_TRUE(job->Tick(kT0 + 10).ok());
  ASSERT_TRUE(Upload(*job, "a", 2, 10, 3, 2, kT0 + 11).ok());
  ASSERT_TRUE(Upload(*job, "b", 2, 30, 5, 4, kT0 + 12).ok());
  ASSERT_TRUE(job->Tick(kT0 + 13).ok());
  ASSERT_EQ(job->finished_rounds(), 2);
  // d = (4, 4) - (2, 2): m = 0.9 * 2 + 2 = 3.8 (plain FedAvg would give 4).
  auto latest = Latest(*job);
  ASSERT_EQ(latest["encoder.w"].size(), 2u);
  EXPECT_NEAR(latest["encoder.w"][0], 5.8f, 1e-5);
}

}  // namespace
}  // namespace fedjoint::coordinator
