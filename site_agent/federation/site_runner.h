// The site agent's round loop: join -> wait for a task -> pull and verify the global model ->
// merge it with the site's own tensors -> train -> keep site-scoped tensors, send only what the
// task's scopes allow -> report metrics -> repeat until the job is done. Everything it keeps is
// in the site's state folder, so a restarted agent resumes:
//
//   STATE/models/<digest>.safetensors (+ .sig)   verified global models
//   STATE/site/<phase>[.previous].safetensors    this site's site-scoped tensors (never sent; two
//                                                generations, see site_tensor_store.h)
//   STATE/progress.json                          job id and the last round this site finished
//   STATE/final/model.safetensors                the final global model merged with the site's
//                                                own tensors, ready for `segment`
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/security/model_signing.h"
#include "common/tensors/safetensors.h"
#include "site_agent/federation/coordinator_client.h"
#include "site_agent/federation/egress_filter.h"
#include "site_agent/federation/local_trainer.h"
#include "site_agent/federation/site_tensor_store.h"

namespace fedjoint::site_agent {

struct SiteRunnerOptions {
  std::string site;
  std::filesystem::path state_dir;
  std::map<std::string, int64_t> samples_by_joint;  // what the site declares when it joins
  std::string agent_version = "fedjoint-site";
  // When steps > 0: after the job, the final model is fine-tuned here into STATE/personalized/
  // (LocalTrainer::Personalize), beside the global one in STATE/final/.
  fedjoint::v1::PersonalizationConfig personalization;
};

// What the signed metadata of a pulled model must say. The coordinator writes fedjoint.job,
// fedjoint.phase and fedjoint.round into every model it publishes and the signature covers them,
// so checking them here keeps a validly signed model of another job, phase or (older) round from
// passing as the one a task names.
struct ExpectedModel {
  std::string job_id;       // empty: not checked
  std::string phase;        // empty: not checked
  int64_t round = -1;       // the round the model was published by; -1: not checked
  bool or_initial = false;  // a phase's initial model (round 0) is acceptable too
};
// A TRAIN task of round r starts from the model round r - 1 published, or from its phase's
// initial model (the phase's first round).
ExpectedModel ExpectedStartModel(const fedjoint::v1::Task& task);
// Checks `metadata` (of the model at `path`, for errors) against `expected`.
absl::Status CheckModelMetadata(const common::tensors::Metadata& metadata,
                                const ExpectedModel& expected, const std::string& path);

class SiteRunner {
 public:
  SiteRunner(SiteRunnerOptions options, CoordinatorClient* client,
             common::security::SignatureVerifier verifier, LocalTrainer* trainer);

  // Runs until the job is done (OK), or fails with the reason. Transient coordinator outages are
  // retried with backoff; a coordinator restart makes the site re-join and continue.
  absl::Status Run();

  // Downloads (or reuses) the model with `digest`, verifying transfer digest, content digest,
  // the consortium signature and the signed metadata against `expected`; returns its path.
  absl::StatusOr<std::filesystem::path> PullModel(const std::string& session,
                                                  const fedjoint::v1::Task& task,
                                                  const ExpectedModel& expected);

  // `fedjoint-site pull-model`: the latest finished global model, verified, merged with this
  // site's own tensors of its phase, written to out_dir/model.safetensors (with the signed global
  // model beside it).
  absl::Status PullLatest(const std::filesystem::path& out_dir);

 private:
  absl::Status RunTask(const std::string& session, const fedjoint::v1::Task& task);
  absl::Status Finish(const std::string& session, const fedjoint::v1::Task& task);
  // The exported model in `final_dir` fine-tuned into `out_dir` (same files).
  absl::Status Personalize(const std::filesystem::path& final_dir,
                           const std::filesystem::path& out_dir);
  absl::Status ExportModel(const std::filesystem::path& global_path, const std::string& digest,
                           const std::filesystem::path& out_dir);
  absl::StatusOr<common::tensors::TensorMap> SiteTensors(const fedjoint::v1::Task& task);
  absl::Status SaveProgress(const std::string& job_id, int64_t round);
  int64_t LastRound() const;
  std::vector<std::string> Joints() const;

  SiteRunnerOptions options_;
  CoordinatorClient* client_;
  common::security::SignatureVerifier verifier_;
  LocalTrainer* trainer_;
  SiteTensorStore site_tensors_;
};

}  // namespace fedjoint::site_agent
