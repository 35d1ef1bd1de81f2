#include "site_agent/federation/site_runner.h"

#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/aggregation/scopes.h"
#include "common/base/atomic_file.h"
#include "common/base/status.h"
#include "common/log/logging.h"
#include "common/tensors/safetensors_file.h"

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;
namespace agg = common::aggregation;
using common::tensors::TensorMap;

std::shared_ptr<spdlog::logger> Log() { return common::log::Get("site"); }

bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsCancelled(s);
}

// Sends heartbeats with the training progress while local training runs.
class HeartbeatThread {
 public:
  HeartbeatThread(CoordinatorClient* client, std::string session, int64_t round, double every_s)
      : client_(client),
        session_(std::move(session)),
        round_(round),
        every_(every_s),
        thread_([this] { Run(); }) {}
  ~HeartbeatThread() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void SetProgress(double p) { progress_ = p; }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, std::chrono::duration<double>(every_), [&] { return done_; })) {
      fedjoint::v1::HeartbeatRequest request;
      request.set_site(client_->options().site);
      request.set_session_id(session_);
      request.set_round(round_);
      request.set_progress(progress_);
      lock.unlock();
      auto answer = client_->Heartbeat(request);
      if (!answer.ok()) Log()->debug("heartbeat: {}", std::string(answer.status().message()));
      lock.lock();
    }
  }
  CoordinatorClient* client_;
  std::string session_;
  int64_t round_;
  double every_;
  std::atomic<double> progress_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<ScopedWeights> SplitByScope(const TensorMap& weights, const fedjoint::v1::Task& task,
                                           const std::vector<std::string>& site_joints) {
  std::vector<agg::ScopeRule> rules;
  for (const auto& r : task.scopes()) {
    auto scope = agg::ParseScope(r.scope());
    if (!scope.ok()) return scope.status();
    rules.push_back({r.pattern(), *scope});
  }
  std::vector<std::string> joints;
  for (const auto& j : task.model().joints()) joints.push_back(j.name());
  ScopedWeights out;
  for (const auto& [name, tensor] : weights) {
    auto scope = agg::ResolveScope(name, rules, joints);
    if (!scope.ok()) return scope.status();
    // Integer tensors (BatchNorm's num_batches_tracked) are local bookkeeping, never averaged.
    if (scope->scope == agg::Scope::kSite || !at::isFloatingType(tensor.scalar_type())) {
      out.site[name] = tensor;
      continue;
    }
    if (scope->scope == agg::Scope::kDomain &&
        std::find(site_joints.begin(), site_joints.end(), scope->joint) == site_joints.end()) {
      continue;  // another joint's head: this site neither trained nor may send it
    }
    if (tensor.scalar_type() != at::kFloat) {
      return absl::InvalidArgumentError(
          absl::StrCat("shared tensor '", name, "' is ",
                       std::string(c10::toString(tensor.scalar_type())), ", expected float32"));
    }
    out.shared[name] = tensor;
  }
  return out;
}

SiteRunner::SiteRunner(SiteRunnerOptions options, CoordinatorClient* client,
                       common::security::SignatureVerifier verifier, LocalTrainer* trainer)
    : options_(std::move(options)),
      client_(client),
      verifier_(std::move(verifier)),
      trainer_(trainer) {}

std::vector<std::string> SiteRunner::Joints() const {
  std::vector<std::string> joints;
  for (const auto& [joint, n] : options_.samples_by_joint) joints.push_back(joint);
  return joints;
}

int64_t SiteRunner::LastRound() const {
  auto text = common::base::ReadSmallFile(options_.state_dir / "progress.json", 1 << 20);
  if (!text.ok()) return 0;
  auto json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded()) return 0;
  return json.value("last_round", int64_t{0});
}

absl::Status SiteRunner::SaveProgress(const std::string& job_id, int64_t round) {
  nlohmann::json json = {{"job_id", job_id}, {"last_round", round}};
  return common::base::WriteFileAtomically(options_.state_dir / "progress.json", json.dump(2));
}

absl::StatusOr<fs::path> SiteRunner::PullModel(const std::string& session,
                                               const fedjoint::v1::Task& task) {
  const fs::path dir = options_.state_dir / "models";
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path path = dir / (task.model_digest() + ".safetensors");
  const fs::path sig = common::security::SignaturePathFor(path);
  auto verify = [&]() -> absl::Status {
    if (auto s = verifier_.VerifyFile(path, sig); !s.ok()) return s;
    auto file = common::tensors::SafetensorsFile::Open(path);
    if (!file.ok()) return file.status();
    if (file->digest() != task.model_digest()) {
      return absl::DataLossError(absl::StrCat(path.string(), ": content digest ", file->digest(),
                                              " differs from the task's ", task.model_digest()));
    }
    return absl::OkStatus();
  };
  if (fs::exists(path) && fs::exists(sig) && verify().ok()) return path;
  if (auto s = common::base::WriteFileAtomically(sig, task.model_signature()); !s.ok()) return s;
  if (auto s = client_->DownloadModel(session, task.round(), task.model_digest(),
                                      task.model_bytes(), path);
      !s.ok()) {
    return s;
  }
  if (auto s = verify(); !s.ok()) {
    fs::remove(path, ec);
    return s;
  }
  return path;
}

absl::StatusOr<TensorMap> SiteRunner::SiteTensors(const fedjoint::v1::Task& task) {
  const fs::path path = options_.state_dir / "site" / (task.phase() + ".safetensors");
  if (fs::exists(path)) return common::tensors::LoadSafetensors(path);
  return trainer_->InitialSiteTensors(task);
}

absl::Status SiteRunner::RunTask(const std::string& session, const fedjoint::v1::Task& task) {
  const std::string where = absl::StrCat("round ", task.round(), " (", task.phase(), ")");
  auto model_path = PullModel(session, task);
  if (!model_path.ok()) return common::base::Annotate(model_path.status(), where);
  auto global = common::tensors::LoadSafetensors(*model_path);
  if (!global.ok()) return global.status();
  auto own = SiteTensors(task);
  if (!own.ok()) return own.status();

  TrainRequest request;
  request.task = task;
  request.weights = std::move(*global);
  for (auto& [name, tensor] : *own) request.weights[name] = tensor;
  for (const auto& previous : task.previous_phases()) {
    fedjoint::v1::Task pull = task;
    pull.set_model_digest(previous.digest());
    pull.set_model_bytes(previous.bytes());
    pull.set_model_signature(previous.signature());
    auto path = PullModel(session, pull);
    if (!path.ok())
      return common::base::Annotate(path.status(), "previous phase " + previous.phase());
    auto weights = common::tensors::LoadSafetensors(*path);
    if (!weights.ok()) return weights.status();
    const fs::path own_path = options_.state_dir / "site" / (previous.phase() + ".safetensors");
    if (fs::exists(own_path)) {
      auto site_part = common::tensors::LoadSafetensors(own_path);
      if (!site_part.ok()) return site_part.status();
      for (auto& [name, tensor] : *site_part) (*weights)[name] = tensor;
    }
    request.previous_phases[previous.phase()] = std::move(*weights);
  }

  Log()->info("{}: training locally", where);
  auto started = std::chrono::steady_clock::now();
  absl::StatusOr<TrainResult> result;
  {
    HeartbeatThread heartbeat(client_, session, task.round(), 2.0);
    request.on_progress = [&heartbeat](double p) { heartbeat.SetProgress(p); };
    result = trainer_->Train(std::move(request));
  }
  if (!result.ok()) return common::base::Annotate(result.status(), where);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  auto split = SplitByScope(result->weights, task, Joints());
  if (!split.ok()) return split.status();
  // Site-scoped tensors stay here, written before anything is sent.
  fs::create_directories(options_.state_dir / "site");
  if (auto s = common::tensors::WriteSafetensors(
          options_.state_dir / "site" / (task.phase() + ".safetensors"), split->site);
      !s.ok()) {
    return s;
  }
  auto refs = common::tensors::MakeTensorRefs(split->shared);
  if (!refs.ok()) return refs.status();
  auto encoding = common::tensors::EncodeSafetensors(
      refs->refs,
      {{"fedjoint.site", options_.site}, {"fedjoint.round", std::to_string(task.round())}});
  if (!encoding.ok()) return encoding.status();
  fedjoint::v1::UploadHeader header;
  header.set_session_id(session);
  header.set_round(task.round());
  header.set_phase(task.phase());
  header.set_num_samples(result->num_samples);
  for (const auto& p : result->prototypes) *header.add_prototypes() = p;
  auto uploaded = client_->UploadUpdate(header, *encoding);
  if (!uploaded.ok()) return common::base::Annotate(uploaded.status(), where);

  fedjoint::v1::MetricsReport report;
  report.set_site(options_.site);
  report.set_session_id(session);
  report.set_round(task.round());
  report.set_phase(task.phase());
  for (const auto& [k, v] : result->metrics) (*report.mutable_values())[k] = v;
  (*report.mutable_values())["train_seconds"] = seconds;
  if (auto s = client_->ReportMetrics(report); !s.ok()) {
    Log()->warn("{}: metrics not delivered: {}", where, std::string(s.message()));
  }
  Log()->info("{}: update sent ({} tensors, {:.1f} MB, {} samples, {:.1f} s training)", where,
              split->shared.size(), double(encoding->total_size) / 1e6, result->num_samples,
              seconds);
  return SaveProgress(task.job_id(), task.round());
}

absl::Status SiteRunner::ExportModel(const fs::path& global_path, const std::string& digest,
                                     const fs::path& out_dir) {
  common::tensors::Metadata global_metadata;
  auto weights = common::tensors::LoadSafetensors(global_path, {}, &global_metadata);
  if (!weights.ok()) return weights.status();
  // The model's phase (written by the coordinator) names the site-scoped tensors that complete
  // it for inference here.
  const std::string phase = global_metadata.count("fedjoint.phase")
                                ? global_metadata.at("fedjoint.phase")
                                : std::string();
  const fs::path own = options_.state_dir / "site" / (phase + ".safetensors");
  bool merged = false;
  if (!phase.empty() && fs::exists(own)) {
    auto site_part = common::tensors::LoadSafetensors(own);
    if (!site_part.ok()) return site_part.status();
    for (auto& [name, tensor] : *site_part) (*weights)[name] = tensor;
    merged = true;
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  common::tensors::Metadata metadata = global_metadata;
  metadata.erase(std::string(common::tensors::kDigestMetadataKey));
  metadata["fedjoint.global_digest"] = digest;
  metadata["fedjoint.site"] = options_.site;
  metadata["fedjoint.site_tensors"] = merged ? "merged" : "none (this site never trained it)";
  if (auto s = common::tensors::WriteSafetensors(out_dir / "model.safetensors", *weights, metadata);
      !s.ok()) {
    return s;
  }
  // The signed global model travels with it, so `segment` can check where it came from.
  fs::copy_file(global_path, out_dir / "global.safetensors", fs::copy_options::overwrite_existing,
                ec);
  if (!ec) {
    fs::copy_file(common::security::SignaturePathFor(global_path),
                  out_dir / "global.safetensors.sig", fs::copy_options::overwrite_existing, ec);
  }
  if (ec) return absl::InternalError(absl::StrCat(out_dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status SiteRunner::Finish(const std::string& session, const fedjoint::v1::Task& task) {
  if (task.model_digest().empty()) return absl::OkStatus();
  auto path = PullModel(session, task);
  if (!path.ok()) return path.status();
  const fs::path final_dir = options_.state_dir / "final";
  if (auto s = ExportModel(*path, task.model_digest(), final_dir); !s.ok()) return s;
  Log()->info("job finished: final model in {}", final_dir.string());
  return absl::OkStatus();
}

absl::Status SiteRunner::PullLatest(const fs::path& out_dir) {
  auto latest = client_->LatestModel();
  if (!latest.ok()) return latest.status();
  fedjoint::v1::Task task;
  task.set_round(latest->round());
  task.set_model_digest(latest->digest());
  task.set_model_bytes(latest->bytes());
  task.set_model_signature(latest->signature());
  auto path = PullModel("", task);
  if (!path.ok()) return path.status();
  if (auto s = ExportModel(*path, latest->digest(), out_dir); !s.ok()) return s;
  Log()->info("round {} model ({}) verified and written to {}", latest->round(), latest->phase(),
              out_dir.string());
  return absl::OkStatus();
}

absl::Status SiteRunner::Run() {
  std::error_code ec;
  fs::create_directories(options_.state_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(options_.state_dir.string(), ": cannot create state folder: ", ec.message()));
  }
  int failures = 0;
  while (true) {
    fedjoint::v1::JoinRequest join;
    join.set_version(fedjoint::v1::PROTOCOL_VERSION_1);
    join.set_site(options_.site);
    join.set_agent_version(options_.agent_version);
    for (const auto& [joint, n] : options_.samples_by_joint) {
      auto* d = join.add_domains();
      d->set_joint(joint);
      d->set_num_samples(n);
    }
    auto joined = client_->Join(join);
    if (!joined.ok()) return joined.status();
    const std::string session = joined->session_id();
    Log()->info("joined job '{}' as '{}'", joined->job_id(), options_.site);

    absl::Status status;
    while (status.ok()) {
      auto task = client_->GetTask(session, LastRound());
      if (!task.ok()) {
        status = task.status();
        break;
      }
      if (task->kind() == fedjoint::v1::Task::DONE) return Finish(session, *task);
      if (task->kind() == fedjoint::v1::Task::TRAIN) {
        status = RunTask(session, *task);
        if (status.ok()) failures = 0;
      }
    }
    // A coordinator restart forgets sessions (FailedPrecondition: not joined) and outages are
    // transient: re-join with backoff. Anything else (refused update, bad model) is reported and
    // also retried a few times, since the round may simply have moved on.
    if (!Transient(status) && !absl::IsFailedPrecondition(status) && ++failures > 5) return status;
    double wait = client_->BackoffSeconds(std::min(failures, 6));
    Log()->warn("{}; re-joining in {:.1f} s", std::string(status.message()), wait);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
}

}  // namespace fedjoint::site_agent
