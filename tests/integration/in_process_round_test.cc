// The site's round loop against the real coordinator job and transport with no socket at all:
// SiteRunner -> CoordinatorClient -> gRPC in-process channel -> FederationService -> FederatedJob,
// with the test as the runner that owns the clock and the ticker. Identity comes from a test
// authenticator (the certificate path is what the loopback tests beside this one cover).
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "common/tensors/safetensors_file.h"
#include "coordinator/job/federated_job.h"
#include "coordinator/service/federation_service.h"
#include "site_agent/federation/coordinator_client.h"
#include "site_agent/federation/site_runner.h"
#include "tests/integration/federation_fixture.h"

namespace fedjoint {
namespace {

namespace fs = std::filesystem;
using integration::FakeTrainer;
using integration::FederationTest;
using integration::Values;

class InProcessRoundTest : public FederationTest {
 protected:
  // A job of `rounds` rounds for one site, served in-process; the ticker is this test's.
  void StartInProcess(int rounds) {
    CreateJob({.rounds = rounds, .min_sites = 1});
    if (HasFatalFailure()) return;
    coordinator::ServiceOptions service_options;
    service_options.task_poll_s = 1;
    service_options.chunk_bytes = 64;
    service_ = std::make_unique<coordinator::FederationService>(
        job_.get(), [](grpc::CallbackServerContext*) { return std::string("site-a"); },
        service_options, [this] { return now_.load(); });
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    in_process_ = builder.BuildAndStart();
    ASSERT_NE(in_process_, nullptr);
    // The site checks task deadlines against its own wall clock, so the runner's clock is the
    // system's here, read once per tick and handed to both the job and the service.
    ticker_ = std::thread([this] {
      while (!stop_) {
        now_ = coordinator::SystemClockSeconds();
        if (auto s = job_->Tick(now_); !s.ok()) ADD_FAILURE() << s;
        service_->AnswerPolls();
        service_->WaitForTick(std::chrono::milliseconds(5));
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (service_) service_->StopTicks();
    if (ticker_.joinable()) ticker_.join();
    if (service_) service_->DrainPolls();
    if (in_process_) in_process_->Shutdown();
    FederationTest::TearDown();
  }

  absl::Status RunInProcessSite(FakeTrainer* trainer) {
    site_agent::CoordinatorClient client(ClientOptionsFor("site-a"),
                                         in_process_->InProcessChannel(grpc::ChannelArguments()));
    return RunSiteWith(&client, "site-a", trainer, {{"knee", 10}});
  }

  std::atomic<double> now_{coordinator::SystemClockSeconds()};
  std::atomic<bool> stop_{false};
  std::unique_ptr<coordinator::FederationService> service_;
  std::unique_ptr<grpc::Server> in_process_;
  std::thread ticker_;
};

TEST_F(InProcessRoundTest, ASiteRunsEveryRoundOfTheJobAndKeepsItsOwnTensors) {
  StartInProcess(/*rounds=*/3);
  if (HasFatalFailure()) return;
  FakeTrainer trainer("knee", 1, 10);
  absl::Status status = RunInProcessSite(&trainer);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(trainer.calls, 3);
  EXPECT_EQ(job_->finished_rounds(), 3);

  // Each round adds the trainer's delta to every shared tensor (one site: the average is its own).
  auto model =
      common::tensors::SafetensorsFile::Open(dir_ / "state/rounds/0003/global.safetensors");
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> conv = Values(*model, "encoder.conv.weight");
  ASSERT_EQ(conv.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(conv[i], float(i) + 3, 1e-5) << i;
  std::vector<float> knee = Values(*model, "heads.knee.weight");
  EXPECT_EQ(knee, (std::vector<float>{13, 23}));
  // No site holds the ankle: its head never moves.
  EXPECT_EQ(Values(*model, "heads.ankle.weight"), (std::vector<float>{30, 40}));
  for (const auto& info : model->tensors()) {
    EXPECT_EQ(info.name.find("norms"), std::string::npos) << info.name << " left the site";
  }

  // The site exported the final model (global + its own tensors) and remembers where it is.
  EXPECT_TRUE(fs::exists(dir_ / "site-a/state/final/model.safetensors"));
  std::ifstream progress(dir_ / "site-a/state/progress.json");
  auto json = nlohmann::json::parse(progress, nullptr, false);
  ASSERT_FALSE(json.is_discarded());
  EXPECT_EQ(json.value("last_round", int64_t{0}), 3);
  EXPECT_EQ(json.value("job_id", std::string()), "test-job");
}

}  // namespace
}  // namespace fedjoint
