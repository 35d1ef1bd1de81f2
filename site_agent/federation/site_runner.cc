#include "site_agent/federation/site_runner.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/atomic_file.h"
#include "common/base/status.h"
#include "common/config/model_config_json.h"
#include "common/log/logging.h"
#include "common/tensors/safetensors_file.h"

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;
namespace agg = common::aggregation;
using common::tensors::TensorMap;

std::shared_ptr<spdlog::logger> Log() { return common::log::Get("site"); }

double NowUnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// When local training must stop for the update to reach the coordinator before the round's
// deadline: a fifth of the time left is kept for encoding and uploading, at most two minutes
// (a 1 GB update at 10 MB/s takes under that).
double TrainUntil(const fedjoint::v1::Task& task, double now_s) {
  const double left = std::max(0.0, task.deadline_unix_s() - now_s);
  return task.deadline_unix_s() - std::min(120.0, 0.2 * left);
}

// Copies a signed global model and its signature into `out_dir` as global.safetensors (+ .sig),
// the pair `segment` verifies a model folder against.
absl::Status CopySignedGlobal(const fs::path& global_path, const fs::path& out_dir) {
  std::error_code ec;
  fs::copy_file(global_path, out_dir / "global.safetensors", fs::copy_options::overwrite_existing,
                ec);
  if (!ec) {
    fs::copy_file(common::security::SignaturePathFor(global_path),
                  out_dir / "global.safetensors.sig", fs::copy_options::overwrite_existing, ec);
  }
  if (ec) return absl::InternalError(absl::StrCat(out_dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

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

ExpectedModel ExpectedStartModel(const fedjoint::v1::Task& task) {
  return {task.job_id(), task.phase(), task.round() - 1, /*or_initial=*/true};
}

absl::Status CheckModelMetadata(const common::tensors::Metadata& metadata,
                                const ExpectedModel& expected, const std::string& path) {
  auto value = [&](const char* key) {
    auto it = metadata.find(key);
    return it == metadata.end() ? std::string("(missing)") : it->second;
  };
  auto refuse = [&](const char* key, const std::string& want) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": signed ", key, " is '", value(key),
                                                    "', expected ", want,
                                                    " (a validly signed model of something else)"));
  };
  if (!expected.job_id.empty() && value("fedjoint.job") != expected.job_id) {
    return refuse("fedjoint.job", absl::StrCat("'", expected.job_id, "'"));
  }
  if (!expected.phase.empty() && value("fedjoint.phase") != expected.phase) {
    return refuse("fedjoint.phase", absl::StrCat("'", expected.phase, "'"));
  }
  if (expected.round >= 0) {
    const std::string round = value("fedjoint.round");
    const bool ok =
        round == std::to_string(expected.round) || (expected.or_initial && round == "0");
    if (!ok) {
      return refuse("fedjoint.round",
                    expected.or_initial && expected.round != 0
                        ? absl::StrCat("'", expected.round, "' or '0' (the phase's initial model)")
                        : absl::StrCat("'", expected.round, "'"));
    }
  }
  return absl::OkStatus();
}

SiteRunner::SiteRunner(SiteRunnerOptions options, CoordinatorClient* client,
                       common::security::SignatureVerifier verifier, LocalTrainer* trainer)
    : options_(std::move(options)),
      client_(client),
      verifier_(std::move(verifier)),
      trainer_(trainer),
      site_tensors_(options_.state_dir / "site") {}

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
                                               const fedjoint::v1::Task& task,
                                               const ExpectedModel& expected) {
  const fs::path dir = options_.state_dir / "models";
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path path = dir / (task.model_digest() + ".safetensors");
  const fs::path sig = common::security::SignaturePathFor(path);
  // The signature covers the file's bytes, and with them the content digest the coordinator
  // stored in its header: once the signature verifies, recomputing that digest (another pass over
  // the data) proves nothing more, so the stored one is compared with the task's as it stands.
  auto check = [&](const absl::Status& signature) -> absl::Status {
    if (!signature.ok()) return signature;
    auto file = common::tensors::SafetensorsFile::Open(path, {.verify_digest = false});
    if (!file.ok()) return file.status();
    if (file->digest() != task.model_digest()) {
      return absl::DataLossError(absl::StrCat(path.string(), ": content digest ", file->digest(),
                                              " differs from the task's ", task.model_digest()));
    }
    return CheckModelMetadata(file->metadata(), expected, path.string());
  };
  if (fs::exists(path) && fs::exists(sig) && check(verifier_.VerifyFile(path, sig)).ok()) {
    return path;
  }
  // Part of the cache: written without fsync, like the model (both are verified on every use).
  {
    auto writer = common::base::AtomicFileWriter::Open(sig);
    if (!writer.ok()) return writer.status();
    if (auto s = writer->Write(task.model_signature()); !s.ok()) return s;
    if (auto s = writer->Commit(common::base::AtomicFileWriter::Sync::kSkip); !s.ok()) return s;
  }
  // The transfer's SHA-256 is the SHA-256 of the file: the signature is checked against it.
  auto sha256 =
      client_->DownloadModel(session, task.round(), task.model_digest(), task.model_bytes(), path);
  if (!sha256.ok()) return sha256.status();
  if (auto s = check(verifier_.VerifyDigest(*sha256, task.model_signature(), sig.string()));
      !s.ok()) {
    fs::remove(path, ec);
    return s;
  }
  return path;
}

absl::StatusOr<TensorMap> SiteRunner::SiteTensors(const fedjoint::v1::Task& task) {
  auto saved = site_tensors_.ForRound(task.phase(), task.round());
  if (!saved.ok()) return saved.status();
  if (saved->has_value()) return std::move(**saved);
  return trainer_->InitialSiteTensors(task);
}

absl::Status SiteRunner::RunTask(const std::string& session, const fedjoint::v1::Task& task) {
  const std::string where = absl::StrCat("round ", task.round(), " (", task.phase(), ")");
  // The deadline is the coordinator's clock; one that looks passed on arrival means this
  // machine's clock is ahead, and honouring it would skip every update: train without it.
  const bool has_deadline = task.deadline_unix_s() > NowUnixSeconds();
  if (task.deadline_unix_s() > 0 && !has_deadline) {
    Log()->warn(
        "{}: the task's deadline has already passed by this machine's clock; is the clock "
        "right (NTP)? Training without a deadline",
        where);
  }
  auto model_path = PullModel(session, task, ExpectedStartModel(task));
  if (!model_path.ok()) return common::base::Annotate(model_path.status(), where);
  // PullModel has just verified it (signature over every byte).
  auto global = common::tensors::LoadSafetensors(*model_path, {.verify_digest = false});
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
    auto path = PullModel(session, pull, {task.job_id(), previous.phase()});
    if (!path.ok())
      return common::base::Annotate(path.status(), "previous phase " + previous.phase());
    auto weights = common::tensors::LoadSafetensors(*path, {.verify_digest = false});
    if (!weights.ok()) return weights.status();
    const fs::path own_path = site_tensors_.LatestPath(previous.phase());
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
    request.train_until_unix_s = has_deadline ? TrainUntil(task, NowUnixSeconds()) : 0;
    result = trainer_->Train(std::move(request));
  }
  if (!result.ok()) return common::base::Annotate(result.status(), where);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // The coordinator refuses an update after the deadline (and has closed or retried the round):
  // sending it would only cost the upload. Nothing of this training is kept (the site tensors
  // are saved below, only for an update that is sent); the loop asks for the next task.
  if (has_deadline && NowUnixSeconds() >= task.deadline_unix_s()) {
    Log()->warn("{}: the round's deadline passed during local training ({:.1f} s); update not sent",
                where, seconds);
    return absl::OkStatus();
  }

  auto egress = EgressFilter::ForTask(task, Joints());
  if (!egress.ok()) return egress.status();
  auto split = egress->Split(result->weights);
  if (!split.ok()) return split.status();
  // Site-scoped tensors stay here, written before anything is sent.
  if (auto s = site_tensors_.Save(task.phase(), task.round(), split->site); !s.ok()) return s;
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
  // The coordinator refuses a count above the sum declared at join. The declaration counts every
  // labelled slice under the site's own model settings; a task cutting slices along another axis
  // can count more of the same scans. Capping keeps the update (its weight is then the declared
  // amount of data) instead of having every update of the job refused.
  int64_t declared = 0;
  for (const auto& [joint, n] : options_.samples_by_joint) declared += n;
  int64_t num_samples = result->num_samples;
  if (declared > 0 && num_samples > declared) {
    Log()->warn("{}: trained on {} slices, more than the {} declared at join; claiming {}", where,
                num_samples, declared, declared);
    num_samples = declared;
  }
  header.set_num_samples(num_samples);
  for (const auto& p : result->prototypes) *header.add_prototypes() = p;
  // The metrics travel in the header, recorded with the update: a ReportMetrics after the upload
  // would arrive after the round closed whenever this update was the last one it waited for.
  for (const auto& [k, v] : result->metrics) (*header.mutable_metrics())[k] = v;
  (*header.mutable_metrics())["train_seconds"] = seconds;
  auto uploaded = client_->UploadUpdate(header, *encoding);
  if (!uploaded.ok()) return common::base::Annotate(uploaded.status(), where);
  Log()->info("{}: update sent ({} tensors, {:.1f} MB, {} samples, {:.1f} s training)", where,
              split->shared.size(), double(encoding->total_size) / 1e6, num_samples, seconds);
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
  const fs::path own = site_tensors_.LatestPath(phase);
  bool merged = false;
  if (!phase.empty() && fs::exists(own)) {
    auto site_part = common::tensors::LoadSafetensors(own);
    if (!site_part.ok()) return site_part.status();
    for (auto& [name, tensor] : *site_part) (*weights)[name] = tensor;
    merged = true;
  }
  // The normalization statistics the site kept were gathered with its own pre-averaging weights;
  // the trainer re-estimates them for these (LocalTrainer::PrepareForInference).
  bool prepared = false;
  auto model_json = global_metadata.find(common::config::kModelConfigMetadataKey);
  if (merged && trainer_ != nullptr && model_json != global_metadata.end()) {
    auto model = common::config::ModelConfigFromJson(model_json->second);
    if (!model.ok()) {
      return absl::DataLossError(
          absl::StrCat(global_path.string(), ": ", std::string(model.status().message())));
    }
    auto ready = trainer_->PrepareForInference(*model, std::move(*weights));
    if (!ready.ok()) return ready.status();
    *weights = std::move(*ready);
    prepared = true;
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  common::tensors::Metadata metadata = global_metadata;
  metadata.erase(std::string(common::tensors::kDigestMetadataKey));
  metadata["fedjoint.global_digest"] = digest;
  metadata["fedjoint.site"] = options_.site;
  metadata["fedjoint.site_tensors"] =
      !merged    ? "none (this site never trained it)"
      : prepared ? "merged; normalization statistics re-estimated on this site's training slices"
                 : "merged";
  if (auto s = common::tensors::WriteSafetensors(out_dir / "model.safetensors", *weights, metadata);
      !s.ok()) {
    return s;
  }
  // The signed global model travels with it, so `segment` can check where it came from.
  return CopySignedGlobal(global_path, out_dir);
}

absl::Status SiteRunner::Finish(const std::string& session, const fedjoint::v1::Task& task) {
  if (task.model_digest().empty()) return absl::OkStatus();
  auto path =
      PullModel(session, task, {.job_id = task.job_id(), .phase = {}, .round = task.round()});
  if (!path.ok()) return path.status();
  const fs::path final_dir = options_.state_dir / "final";
  if (auto s = ExportModel(*path, task.model_digest(), final_dir); !s.ok()) return s;
  Log()->info("job finished: final model in {}", final_dir.string());
  if (options_.personalization.steps() <= 0) return absl::OkStatus();
  return Personalize(final_dir, options_.state_dir / "personalized");
}

absl::Status SiteRunner::Personalize(const fs::path& final_dir, const fs::path& out_dir) {
  common::tensors::Metadata metadata;
  auto weights = common::tensors::LoadSafetensors(final_dir / "model.safetensors", {}, &metadata);
  if (!weights.ok()) return weights.status();
  auto model_json = metadata.find(common::config::kModelConfigMetadataKey);
  if (model_json == metadata.end()) {
    return absl::DataLossError(
        absl::StrCat((final_dir / "model.safetensors").string(), ": no model description"));
  }
  auto model = common::config::ModelConfigFromJson(model_json->second);
  if (!model.ok()) return model.status();
  if (model->architecture() != "unet_resnet") {
    Log()->info("personalization skipped: the final model is a {}, not a segmentation network",
                model->architecture());
    return absl::OkStatus();
  }
  auto personalized = trainer_->Personalize(*model, std::move(*weights), options_.personalization);
  if (!personalized.ok()) return personalized.status();
  const fedjoint::v1::PersonalizationConfig& p = options_.personalization;
  metadata.erase(std::string(common::tensors::kDigestMetadataKey));
  metadata["fedjoint.personalized"] =
      absl::StrCat(p.steps(), " steps at learning rate ", p.learning_rate(), " (", p.parameters(),
                   " parameters) on this site's labelled scans, from ", final_dir.string());
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (auto s =
          common::tensors::WriteSafetensors(out_dir / "model.safetensors", *personalized, metadata);
      !s.ok()) {
    return s;
  }
  if (auto s = CopySignedGlobal(final_dir / "global.safetensors", out_dir); !s.ok()) return s;
  Log()->info("personalized model in {}", out_dir.string());
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
  auto path =
      PullModel("", task, {.job_id = {}, .phase = latest->phase(), .round = latest->round()});
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
