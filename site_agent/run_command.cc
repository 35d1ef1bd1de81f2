#include "site_agent/run_command.h"

#include <thread>

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
// or one derived from the manifest's joints (the task's model decides training later).
v1::ModelConfig JoinModel(const v1::SiteConfig& config, const common::data::Manifest& manifest) {
  if (config.has_model()) return config.model();
  v1::ModelConfig model;
  for (const auto& [joint, labels] : manifest.labels) {
    auto* j = model.add_joints();
    j->set_name(joint);
    for (const auto& name : manifest.Structures(joint)) j->add_structures(name);
  }
  return model;
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
  auto samples = (*trainer)->SamplesByJoint(JoinModel(config, *manifest),
                                            config.training().validation_fraction());
  if (!samples.ok()) return samples.status();
  SiteRunnerOptions options;
  options.site = config.name();
  options.state_dir = config.state_dir();
  options.samples_by_joint = *samples;
  SiteRunner runner(options, site->client.get(), std::move(*site->verifier), trainer->get());
  return runner.Run();
}

absl::Status PullModel(const std::string& config_path, const std::string& out) {
  auto site = Connect(config_path);
  if (!site.ok()) return site.status();
  SiteRunnerOptions options;
  options.site = site->config.name();
  options.state_dir = site->config.state_dir();
  SiteRunner runner(options, site->client.get(), std::move(*site->verifier), nullptr);
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
