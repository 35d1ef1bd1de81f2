// A real federation on loopback, shared by the integration tests: the coordinator's gRPC server
// with mutual TLS on 127.0.0.1, a consortium PKI created at test time, and site agents with small
// fake trainers (the federation is what is under test here, not the network being trained).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/tensors/safetensors_file.h"
#include "common/tensors/torch_tensors.h"
#include "coordinator/job/federated_job.h"
#include "coordinator/service/coordinator_server.h"
#include "site_agent/federation/coordinator_client.h"
#include "site_agent/federation/site_runner.h"

namespace fedjoint::integration {

// The fake network: one global conv, a head per joint, site-scoped norms per joint.
std::vector<coordinator::OwnedTensor> InitialModel(const v1::PhaseConfig&);

// One phase over knee and ankle: `*norms*` site, `heads.*` domain, the rest global.
v1::PhaseConfig Phase(int rounds);

// Adds a delta to every tensor it receives; site-scoped tensors get a recognisable +1000 so a
// leak would show in anything the coordinator stores, and so their history is countable.
class FakeTrainer : public site_agent::LocalTrainer {
 public:
  FakeTrainer(std::string joint, float delta, int64_t samples)
      : joint_(std::move(joint)), delta_(delta), samples_(samples) {}

  absl::StatusOr<common::tensors::TensorMap> InitialSiteTensors(const v1::Task&) override;
  absl::StatusOr<site_agent::TrainResult> Train(site_agent::TrainRequest request) override;

  // Called at the start of every Train with its 1-based call number; may block (a slow or hung
  // site) or throw (a site process dying mid-training).
  std::function<void(int call)> on_train;
  // The delta of a given call (default: the constructor's delta for every call).
  std::function<float(int call)> delta_for;
  std::atomic<int> calls{0};
  // Per call: the task's deadline and the time the site asked training to stop by.
  std::vector<std::pair<double, double>> deadline_and_train_until;

 private:
  std::string joint_;
  float delta_;
  int64_t samples_;
};

// Thrown by a trainer hook to end a site agent's thread the way a kill ends its process: nothing
// after the throw point runs.
struct SiteKilled {};

struct CoordinatorSetup {
  int rounds = 1;
  int min_sites = 1;
  int min_updates = -1;  // -1: same as min_sites
  double deadline_s = 60;
  int port = 0;                // 0 picks a free port; a restart passes the previous one
  double max_update_norm = 0;  // the phase's bound (0: none)
  std::string weighting = "samples";
  double server_learning_rate = 1.0;
};

class FederationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  void SetUp() override;
  void TearDown() override;

  // The job of `setup` in job_ (no server: StartCoordinator adds the loopback one).
  void CreateJob(const CoordinatorSetup& setup);
  void StartCoordinator(CoordinatorSetup setup);
  void StartCoordinator(int rounds, int min_sites, double deadline_s = 60) {
    StartCoordinator({.rounds = rounds, .min_sites = min_sites, .deadline_s = deadline_s});
  }
  // Stops the coordinator the way a kill would: the server and the job are destroyed with no
  // finalize of the open round (everything not on disk is gone).
  void KillCoordinator();

  // The client settings of every test's site: short polls, small chunks, quick retries.
  site_agent::ClientOptions ClientOptionsFor(const std::string& site) const;
  std::unique_ptr<site_agent::CoordinatorClient> Client(const std::string& site,
                                                        const std::string& cert_site = "");
  // Runs a site agent until the job ends; its state folder is dir_/site/state.
  absl::Status RunSite(const std::string& site, FakeTrainer* trainer,
                       std::map<std::string, int64_t> samples);
  // The same over a given client (e.g. one on an in-process channel).
  absl::Status RunSiteWith(site_agent::CoordinatorClient* client, const std::string& site,
                           FakeTrainer* trainer, std::map<std::string, int64_t> samples);

  std::filesystem::path dir_;
  std::unique_ptr<coordinator::FederatedJob> job_;
  std::shared_ptr<common::security::RevocationList> revocations_;
  std::unique_ptr<coordinator::CoordinatorServer> server_;
  int port_ = 0;
  // Client settings for tests that restart the coordinator: keep trying to reach it.
  int client_max_attempts_ = 3;
};

std::vector<float> Values(const common::tensors::SafetensorsFile& file, const std::string& name);
// Every intact line of the coordinator's rounds.jsonl.
std::vector<nlohmann::json> RoundLog(const std::filesystem::path& state_dir);
// Polls `done` every 10 ms for up to `timeout_s`; returns its last value.
bool WaitFor(const std::function<bool()>& done, double timeout_s);

}  // namespace fedjoint::integration
