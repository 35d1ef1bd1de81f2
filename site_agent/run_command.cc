#include "site_agent/run_command.h"

#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/config/config.h"
#include "common/data/manifest.h"
#include "common/security/model_signing.h"
#include "common/security/tls_credentials.h"
#include "site_agent/federation/site_runner.h"
#include "site_agent/training/federated_trainer.h"

namespace fedjoint::site_agent {
namespace {

struct Site {
  v1::SiteConfig config;
  std::unique_ptr<CoordinatorClient> client;
  std::optional<common::security::SignatureVerifier> verifier;
};

absl::StatusOr<Site> Connect(const std::string& config_path) {
  auto config = common::config::LoadConfig<v1::SiteConfig>(config_path);
  if (!config.ok()) return config.status();
  if (config->coordinator().empty() || !config->has_tls()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config_path, ": 'coordinator' and 'tls' are needed to join a federation"));
  }
  const auto& tls = config->tls();
  auto credentials = common::security::LoadClientCredentials(tls.ca_cert(), tls.cert(), tls.key());
  if (!credentials.ok()) return credentials.status();
  auto verifier = common::security::SignatureVerifier::Load(tls.ca_cert());
  if (!verifier.ok()) return verifier.status();
  ClientOptions options;
  options.site = config->name();
  options.target = config->coordinator();
  Site site;
  site.config = *config;
  site.client = std::make_unique<CoordinatorClient>(options, *credentials);
  site.verifier.emplace(std::move(*verifier));
  return site;
}

// The model configuration used to count samples when joining: the site's own `model` section,
// or one derived from the manifest's joints (the task's model decides training later; a task
// slicing along another axis may count more slices, which SiteRunner caps at the declaration). The
// derived one goes through the config parser so every other field gets its documented default
// (input size, slice axis, spacing), exactly as a `model:` section naming only the joints would.
absl::StatusOr<v1::ModelConfig> JoinModel(const v1::SiteConfig& config,
                                          const common::data::Manifest& manifest) {
  if (config.has_model()) return config.model();
  nlohmann::json joints = nlohmann::json::array();
  for (const auto& [joint, labels] : manifest.labels) {
    joints.push_back({{"name", joint}, {"structures", manifest.Structures(joint)}});
  }
  // JSON is YAML: the manifest's names are quoted safely whatever they contain.
  const std::string yaml = nlohmann::json{{"joints", joints}}.dump();
  return common::config::ParseConfig<v1::ModelConfig>(
      yaml, absl::StrCat(manifest.file.string(), " (joints of the manifest)"));
}

absl::Status Run(const std::string& config_path) {
  auto site = Connect(config_path);
  if (!site.ok()) return site.status();
  const v1::SiteConfig& config = site->config;
  training::FederatedTrainerOptions trainer_options;
  trainer_options.manifest = config.manifest();
  trainer_options.state_dir = config.state_dir();
  trainer_options.threads = config.threads();
  trainer_options.loader_threads = config.loader_threads();
  trainer_options.seed = uint64_t(config.seed());
  trainer_options.show_progress = true;
  auto trainer = training::FederatedTrainer::Create(trainer_options);
  if (!trainer.ok()) return trainer.status();
  auto manifest = common::data::LoadManifest(config.manifest());
  if (!manifest.ok()) return manifest.status();
  auto join_model = JoinModel(config, *manifest);
  if (!join_model.ok()) return join_model.status();
  // All labelled slices (no validation holdout): the task decides the holdout later, and an
  // update must never claim more than was declared here.
  auto samples = (*trainer)->SamplesByJoint(*join_model);
  if (!samples.ok()) return samples.status();
  SiteRunnerOptions options;
  options.site = config.name();
  options.state_dir = config.state_dir();
  options.samples_by_joint = *samples;
  options.personalization = config.personalization();
  SiteRunner runner(options, site->client.get(), std::move(*site->verifier), trainer->get());
  return runner.Run();
}

absl::Status PullModel(const std::string& config_path, const std::string& out) {
  auto site = Connect(config_path);
  if (!site.ok()) return site.status();
  SiteRunnerOptions options;
  options.site = site->config.name();
  options.state_dir = site->config.state_dir();
  // The trainer only re-estimates this site's normalization statistics for the pulled weights.
  training::FederatedTrainerOptions trainer_options;
  trainer_options.manifest = site->config.manifest();
  trainer_options.threads = site->config.threads();
  trainer_options.loader_threads = site->config.loader_threads();
  trainer_options.seed = uint64_t(site->config.seed());
  auto trainer = training::FederatedTrainer::Create(trainer_options);
  if (!trainer.ok()) return trainer.status();
  SiteRunner runner(options, site->client.get(), std::move(*site->verifier), trainer->get());
  return runner.PullLatest(out);
}

}  // namespace

void AddRunCommands(common::cli::Program& program) {
  auto config = std::make_shared<std::string>();
  CLI::App* run = program.app().add_subcommand(
      "run", "Join the consortium and take part in federated rounds until the job ends");
  run->add_option("--config", *config, "Site configuration (YAML)")->required();
  program.SetAction(run, [config] { return Run(*config); });

  auto pull_config = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* pull = program.app().add_subcommand(
      "pull-model", "Download and verify the latest global model, merged with this site's tensors");
  pull->add_option("--config", *pull_config, "Site configuration (YAML)")->required();
  pull->add_option("--out", *out, "Output folder")->required();
  program.SetAction(pull, [pull_config, out] { return PullModel(*pull_config, *out); });
}

}  // namespace fedjoint::site_agent
