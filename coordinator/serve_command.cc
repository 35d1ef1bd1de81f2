#include "coordinator/serve_command.h"

#include <csignal>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/config.h"
#include "common/log/logging.h"
#include "common/security/revocation_list.h"
#include "common/security/tls_credentials.h"
#include "coordinator/initial_model.h"
#include "coordinator/job/federated_job.h"
#include "coordinator/phase_scope_check.h"
#include "coordinator/service/coordinator_server.h"
#include "coordinator/store/checkpoint_store.h"

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

absl::Status Serve(const std::string& config_path) {
  auto config =
      common::config::LoadConfig<v1::CoordinatorConfig>(config_path, ScopesAgainstModelsCheck());
  if (!config.ok()) return config.status();
  auto log = common::log::Get("coordinator");

  fs::path signing_cert = config->signing_cert();
  if (signing_cert.empty())
    signing_cert = fs::path(config->signing_key()).replace_extension(".crt");
  auto signer = common::security::ModelSigner::Load(config->signing_key(), signing_cert);
  if (!signer.ok()) return signer.status();
  const auto& tls = config->tls();
  std::shared_ptr<common::security::RevocationList> revocations;
  if (!tls.crl().empty()) {
    auto loaded = common::security::RevocationList::Load(tls.crl(), tls.ca_cert());
    if (!loaded.ok()) return loaded.status();
    revocations = *loaded;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(config_path,
                     ": tls.crl is required by serve (revocation must be enforceable); "
                     "`fedjoint-coordinator pki init` writes pki/crl.pem"));
  }
  auto credentials = common::security::LoadServerCredentials(tls.ca_cert(), tls.server_cert(),
                                                             tls.server_key(), revocations);
  if (!credentials.ok()) return credentials.status();

  JobOptions options = JobOptionsFromConfig(*config);
  auto job =
      FederatedJob::Create(options, config->state_dir(),
                           std::make_shared<common::security::ModelSigner>(std::move(*signer)),
                           BuildInitialModel, SystemClockSeconds());
  if (!job.ok()) return job.status();

  ServerOptions server_options;
  server_options.listen_address = config->listen();
  server_options.max_message_bytes = config->limits().max_message_bytes();
  server_options.keepalive_s = config->limits().keepalive_s();
  server_options.service.chunk_bytes = config->limits().chunk_bytes();
  auto server = CoordinatorServer::Start(job->get(), *credentials, revocations, server_options);
  if (!server.ok()) return server.status();

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  // Sites need a moment after DONE to fetch the final model; stay up for a grace period.
  double done_since = -1;
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    RoundState state = (*job)->state();
    if (state == RoundState::kFailed) {
      (*server)->Shutdown();
      return absl::AbortedError("the job failed: a round could not gather enough updates");
    }
    if (state == RoundState::kDone) {
      if (done_since < 0) {
        done_since = SystemClockSeconds();
        log->info("job done: {} rounds; final model in {}", (*job)->finished_rounds(),
                  (fs::path(config->state_dir()) / "rounds").string());
      } else if (SystemClockSeconds() - done_since > 30) {
        break;
      }
    }
  }
  log->info("shutting down");
  (*server)->Shutdown();
  return absl::OkStatus();
}

std::string Ago(double unix_s) {
  if (unix_s <= 0) return "never";
  double seconds = double(std::time(nullptr)) - unix_s;
  if (seconds < 120) return absl::StrFormat("%.0f s ago", seconds);
  if (seconds < 7200) return absl::StrFormat("%.0f min ago", seconds / 60);
  return absl::StrFormat("%.1f h ago", seconds / 3600);
}

absl::Status Status(const std::string& state_dir) {
  if (!fs::exists(fs::path(state_dir) / "state.json")) {
    return absl::NotFoundError(absl::StrCat(state_dir, ": no coordinator state here (state.json)"));
  }
  // Read-only: status may run beside a live coordinator, which owns the folder (Open would create
  // folders and repair or rewrite rounds.jsonl under it).
  auto store = CheckpointStore::OpenReadOnly(state_dir);
  if (!store.ok()) return store.status();
  auto state = store->LoadState();
  if (!state.ok()) return state.status();
  if (!state->has_value()) {
    return absl::NotFoundError(absl::StrCat(state_dir, ": no coordinator state here (state.json)"));
  }
  auto log = store->ReadRoundLog();
  if (!log.ok()) return log.status();
  const JobState& s = **state;
  // A crash between committing state.json and appending to the log leaves the latest round only
  // in state.json (the next `serve` appends it); show it as the log will.
  int64_t last_logged = 0;
  for (const auto& line : *log)
    last_logged = std::max(last_logged, line.value("round", int64_t{0}));
  if (s.last_round_record.is_object() &&
      s.last_round_record.value("round", int64_t{0}) > last_logged) {
    log->push_back(s.last_round_record);
  }
  std::cout << "job " << s.job_id << ": " << s.finished_rounds << " round(s) finished";
  if (!s.global_digest.empty()) std::cout << ", global model " << s.global_digest.substr(0, 16);
  std::cout << "\n\nsites:\n";
  for (const auto& [name, site] : s.sites) {
    std::string joints;
    for (const auto& [joint, n] : site.samples_by_joint)
      absl::StrAppend(&joints, joint, "=", n, " ");
    std::cout << absl::StrFormat("  %-20s last contact %-14s last round %-4d samples %s\n", name,
                                 Ago(site.last_contact_unix_s), site.last_round_finished, joints);
  }
  std::cout << "\nrounds:\n";
  for (const auto& line : *log) {
    double took = line.value("finished_unix_s", 0.0) - line.value("opened_unix_s", 0.0);
    std::cout << absl::StrFormat("  %4d %-14s %2d update(s) %7.1f s", line.value("round", 0),
                                 line.value("phase", std::string()),
                                 int(line.value("sites", nlohmann::json::array()).size()), took);
    if (line.contains("metrics")) {
      for (const auto& [site, values] : line["metrics"].items()) {
        std::cout << "  " << site << ":";
        for (const auto& [key, value] : values.items()) {
          if (value.is_number()) std::cout << absl::StrFormat(" %s=%.4g", key, value.get<double>());
        }
      }
    }
    std::cout << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddServeCommand(common::cli::Program& program) {
  auto config = std::make_shared<std::string>();
  CLI::App* sub =
      program.app().add_subcommand("serve", "Run the coordinator until the job is done");
  sub->add_option("--config", *config, "Coordinator configuration (YAML)")->required();
  program.SetAction(sub, [config] { return Serve(*config); });
}

void AddStatusCommand(common::cli::Program& program) {
  auto dir = std::make_shared<std::string>();
  CLI::App* sub = program.app().add_subcommand(
      "status", "Show rounds, sites, last contact and per-site metrics of a coordinator state");
  sub->add_option("--state", *dir, "The coordinator's state_dir")->required();
  program.SetAction(sub, [dir] { return Status(*dir); });
}

}  // namespace fedjoint::coordinator
