#include "coordinator/job/federated_job.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/atomic_file.h"
#include "common/base/status.h"
#include "common/config/model_config_json.h"
#include "common/log/logging.h"
#include "common/tensors/safetensors_writer.h"
#include "coordinator/job/server_state_file.h"

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;
namespace agg = common::aggregation;
namespace tensors = common::tensors;
using fedjoint::v1::PhaseConfig;

std::shared_ptr<spdlog::logger> Log() { return common::log::Get("coordinator"); }

// The metadata of every model file the coordinator publishes. The phase's network description
// travels inside the file, so a site can evaluate or segment with a downloaded model without a
// copy of the coordinator's config.
tensors::Metadata ModelMetadata(const PhaseConfig& phase, const std::string& job_id,
                                int64_t round) {
  return {{"fedjoint.job", job_id},
          {"fedjoint.phase", phase.name()},
          {"fedjoint.round", std::to_string(round)},
          {std::string(common::config::kModelConfigMetadataKey),
           common::config::ModelConfigToJson(phase.model())}};
}

std::vector<std::string> SiteJoints(const Orchestrator& o, const std::string& site) {
  std::vector<std::string> joints;
  auto it = o.sites().find(site);
  if (it == o.sites().end()) return joints;
  for (const auto& [joint, n] : it->second.samples_by_joint) joints.push_back(joint);
  return joints;
}

// A site's metrics as the round record stores them (non-finite values as null), or an error when
// they exceed the documented bounds (256 values, names of at most 128 characters).
absl::StatusOr<nlohmann::json> MetricsJson(const std::string& site,
                                           const google::protobuf::Map<std::string, double>& in) {
  if (in.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat("metrics from site '", site, "': too large (",
                                                   in.size(), " values, at most 256)"));
  }
  nlohmann::json values = nlohmann::json::object();
  for (const auto& [k, v] : in) {
    if (k.size() > 128) {
      return absl::InvalidArgumentError(absl::StrCat("metrics from site '", site,
                                                     "': too large (a name of ", k.size(),
                                                     " characters, at most 128)"));
    }
    values[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  }
  return values;
}

}  // namespace

JobOptions JobOptionsFromConfig(const fedjoint::v1::CoordinatorConfig& config) {
  JobOptions o;
  const auto& job = config.job();
  o.job_id = job.id();
  o.orchestrator.min_sites = job.min_sites();
  o.orchestrator.min_updates = job.min_updates();
  o.orchestrator.round_deadline_s = job.round_deadline_s();
  o.orchestrator.site_fraction = job.site_fraction();
  o.orchestrator.max_round_retries = job.max_round_retries();
  o.max_update_bytes = config.limits().max_update_bytes();
  o.phases.assign(job.phases().begin(), job.phases().end());
  return o;
}

// ------------------------------------------------------------------------------------ UploadSink

UploadSink::~UploadSink() {
  if (!finished_ && job_) job_->AbortUpload(this);
}

// ---------------------------------------------------------------------------------- FederatedJob

FederatedJob::FederatedJob(JobOptions options, CheckpointStore store,
                           std::shared_ptr<const common::security::ModelSigner> signer,
                           InitialModelFn initial_model)
    : options_(std::move(options)),
      store_(std::move(store)),
      signer_(std::move(signer)),
      initial_model_(std::move(initial_model)),
      orchestrator_(options_.orchestrator, {}) {}

absl::StatusOr<std::unique_ptr<FederatedJob>> FederatedJob::Create(
    JobOptions options, const fs::path& state_dir,
    std::shared_ptr<const common::security::ModelSigner> signer, InitialModelFn initial_model,
    double now_s) {
  if (options.phases.empty()) return absl::InvalidArgumentError("job has no phases");
  auto store = CheckpointStore::Open(state_dir);
  if (!store.ok()) return store.status();
  std::unique_ptr<FederatedJob> job(new FederatedJob(std::move(options), std::move(*store),
                                                     std::move(signer), std::move(initial_model)));
  if (absl::Status s = job->Resume(now_s); !s.ok()) return s;
  return job;
}

absl::Status FederatedJob::Resume(double now_s) {
  auto saved = store_.LoadState();
  if (!saved.ok()) return saved.status();
  if (saved->has_value()) {
    state_ = std::move(**saved);
    if (state_.job_id != options_.job_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          store_.dir().string(), ": holds job '", state_.job_id, "', the configuration names '",
          options_.job_id, "' (use another state_dir for another job)"));
    }
  } else {
    state_.job_id = options_.job_id;
  }
  // Spool files of uploads that were in flight when the previous process died: their round
  // restarts from scratch (no update is carried over), so they are garbage.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(store_.dir() / "uploads", ec)) {
    if (entry.path().extension() == ".part") fs::remove(entry.path(), ec);
  }
  std::vector<PhasePlan> plans;
  for (const auto& p : options_.phases) plans.push_back({p.name(), p.rounds()});
  orchestrator_ = Orchestrator(options_.orchestrator, plans, state_.finished_rounds);
  // Sites known before the restart must re-join (their sessions are gone), but keep their records.
  for (int64_t r = 1; r <= state_.finished_rounds; ++r) {
    auto model = Register(store_.ModelPath(r));
    if (!model.ok()) return model.status();
    round_model_[r] = model->digest;
  }
  for (const auto& phase : options_.phases) {
    auto initial = PublishInitialModel(phase);
    if (!initial.ok()) return initial.status();
  }
  if (state_.last_round_record.is_object() && state_.last_round_record.contains("prototypes")) {
    for (const auto& p : state_.last_round_record["prototypes"]) {
      fedjoint::v1::Prototype proto;
      proto.set_domain(p.at("domain").get<std::string>());
      proto.set_scale(p.at("scale").get<int>());
      proto.set_count(p.at("count").get<int64_t>());
      for (float v : p.at("values").get<std::vector<float>>()) proto.add_values(v);
      published_prototypes_.push_back(std::move(proto));
    }
  }
  Log()->info("job '{}': {} of {} rounds finished{}", state_.job_id, state_.finished_rounds,
              orchestrator_.total_rounds(), state_.finished_rounds > 0 ? " (resumed)" : "");
  (void)now_s;
  return store_.SaveState(state_);
}

absl::StatusOr<PublishedModel> FederatedJob::Register(const fs::path& path,
                                                      const WrittenModel* written) {
  // A model this process has just written comes with its digests (computed from the bytes as
  // they were written): reading the file back to hash it twice more would prove nothing. A model
  // found on disk (after a restart) is verified in full.
  auto file = tensors::SafetensorsFile::Open(path, {.verify_digest = written == nullptr});
  if (!file.ok()) return file.status();
  if (written && file->digest() != written->digest) {
    return absl::DataLossError(absl::StrCat(path.string(), ": stored digest ", file->digest(),
                                            " is not the one written, ", written->digest));
  }
  auto sig = common::base::ReadSmallFile(common::security::SignaturePathFor(path), 64 << 10);
  if (!sig.ok()) return sig.status();
  common::base::Sha256Digest sha;
  if (written) {
    sha = written->file_sha256;
  } else {
    auto hashed = common::base::Sha256File(path);
    if (!hashed.ok()) return hashed.status();
    sha = *hashed;
  }
  PublishedModel model{path, file->digest(), common::base::DigestToHex(sha), *sig,
                       int64_t(fs::file_size(path))};
  models_[model.digest] = model;
  return model;
}

absl::StatusOr<PublishedModel> FederatedJob::PublishInitialModel(const PhaseConfig& phase) {
  const fs::path path = store_.dir() / "phases" / phase.name() / "initial.safetensors";
  if (fs::exists(path)) {
    auto model = Register(path);
    if (model.ok()) {
      phase_initial_[phase.name()] = model->digest;
      return model;
    }
    Log()->warn("{}: {}; making it again", path.string(), std::string(model.status().message()));
  }
  auto all = initial_model_(phase);
  if (!all.ok()) return all.status();
  auto policy = agg::ScopePolicy::FromProto(phase.scopes(), phase.model());
  if (!policy.ok()) {
    return common::base::Annotate(policy.status(), absl::StrCat("phase '", phase.name(), "'"));
  }
  std::vector<tensors::TensorRef> refs;
  for (const OwnedTensor& t : *all) {
    auto scope = policy->Resolve(t.name);
    if (!scope.ok()) {
      return common::base::Annotate(scope.status(), absl::StrCat("phase '", phase.name(), "'"));
    }
    if (scope->scope == agg::Scope::kSite) continue;  // never stored, never sent
    refs.push_back(
        {t.name, tensors::DType::kF32, t.shape, std::as_bytes(std::span<const float>(t.values))});
  }
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (auto s = tensors::WriteSafetensors(path, refs, ModelMetadata(phase, options_.job_id, 0));
      !s.ok()) {
    return s;
  }
  if (auto s = signer_->SignFile(path); !s.ok()) return s;
  auto model = Register(path);
  if (!model.ok()) return model.status();
  phase_initial_[phase.name()] = model->digest;
  return model;
}

const PhaseConfig& FederatedJob::PhaseConfigOf(int64_t round) const {
  const std::string name = orchestrator_.PhaseOf(round);
  for (const auto& p : options_.phases)
    if (p.name() == name) return p;
  return options_.phases.back();
}

int64_t FederatedJob::FirstRoundOf(const std::string& phase) const {
  int64_t first = 1;
  for (const auto& p : options_.phases) {
    if (p.name() == phase) return first;
    first += p.rounds();
  }
  return first;
}

absl::StatusOr<PublishedModel> FederatedJob::StartModelOf(int64_t round) {
  const std::string phase = orchestrator_.PhaseOf(round);
  std::string digest =
      round == FirstRoundOf(phase) ? phase_initial_.at(phase) : round_model_.at(round - 1);
  return models_.at(digest);
}

absl::StatusOr<PublishedModel> FederatedJob::FindModel(const std::string& digest) const {
  std::lock_guard lock(mutex_);
  auto it = models_.find(digest);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("no published model with digest ", digest));
  }
  return it->second;
}

absl::StatusOr<fedjoint::v1::PhaseModel> FederatedJob::LatestModel() const {
  std::lock_guard lock(mutex_);
  if (round_model_.empty()) return absl::NotFoundError("no round has finished yet");
  const auto& [round, digest] = *round_model_.rbegin();
  const PublishedModel& m = models_.at(digest);
  fedjoint::v1::PhaseModel out;
  out.set_phase(orchestrator_.PhaseOf(round));
  out.set_round(round);
  out.set_digest(m.digest);
  out.set_bytes(m.size);
  out.set_signature(m.signature);
  return out;
}

absl::StatusOr<fedjoint::v1::JoinResponse> FederatedJob::Join(
    const std::string& site, const fedjoint::v1::JoinRequest& request, double now_s) {
  std::lock_guard lock(mutex_);
  if (request.version() != fedjoint::v1::PROTOCOL_VERSION_1) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' speaks protocol version ",
                                                      int(request.version()),
                                                      "; this coordinator speaks version 1"));
  }
  std::map<std::string, int64_t> samples;
  for (const auto& d : request.domains()) {
    if (d.joint().empty() || d.num_samples() < 0 || samples.count(d.joint())) {
      return absl::InvalidArgumentError(
          absl::StrCat("site '", site, "': invalid domain holding '", d.joint(), "'"));
    }
    samples[d.joint()] = d.num_samples();
  }
  if (samples.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("site '", site, "' declared no data"));
  }
  if (auto s = orchestrator_.Join(site, samples, now_s); !s.ok()) return s;
  SiteRecord& record = state_.sites[site];
  record.samples_by_joint = samples;
  record.last_contact_unix_s = now_s;
  if (auto s = store_.SaveState(state_); !s.ok()) return s;
  Log()->info("site '{}' joined ({} joint(s))", site, samples.size());
  fedjoint::v1::JoinResponse response;
  response.set_session_id(absl::StrCat(site, "-", static_cast<int64_t>(now_s * 1000)));
  response.set_job_id(options_.job_id);
  response.set_heartbeat_interval_ms(int64_t(options_.heartbeat_interval_s * 1000));
  return response;
}

absl::StatusOr<fedjoint::v1::Task> FederatedJob::TaskFor(const std::string& site, double now_s) {
  std::lock_guard lock(mutex_);
  if (!orchestrator_.sites().count(site)) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' has not joined"));
  }
  TaskDecision d = orchestrator_.TaskFor(site, now_s);
  fedjoint::v1::Task task;
  task.set_job_id(options_.job_id);
  task.set_poll_after_ms(200);
  if (orchestrator_.state() == RoundState::kFailed) {
    return absl::AbortedError(absl::StrCat("job '", options_.job_id, "' failed: round ",
                                           orchestrator_.current_round(),
                                           " could not gather enough updates"));
  }
  if (d.kind == TaskDecision::Kind::kWait) {
    task.set_kind(fedjoint::v1::Task::WAIT);
    return task;
  }
  if (d.kind == TaskDecision::Kind::kDone) {
    task.set_kind(fedjoint::v1::Task::DONE);
    task.set_round(d.round);
    if (round_model_.count(d.round)) {
      const PublishedModel& m = models_.at(round_model_.at(d.round));
      task.set_model_digest(m.digest);
      task.set_model_bytes(m.size);
      task.set_model_signature(m.signature);
    }
    return task;
  }
  const PhaseConfig& phase = PhaseConfigOf(d.round);
  auto start = StartModelOf(d.round);
  if (!start.ok()) return start.status();
  task.set_kind(fedjoint::v1::Task::TRAIN);
  task.set_phase(d.phase);
  task.set_round(d.round);
  task.set_phase_round(d.round - FirstRoundOf(phase.name()) + 1);
  task.set_phase_rounds(phase.rounds());
  task.set_model_digest(start->digest);
  task.set_model_bytes(start->size);
  task.set_model_signature(start->signature);
  *task.mutable_scopes() = phase.scopes();
  *task.mutable_model() = phase.model();
  *task.mutable_local() = phase.local();
  for (const auto& p : published_prototypes_) *task.add_prototypes() = p;
  // Earlier phases' final models (e.g. the shape prior the segmentation loss uses).
  int64_t end = 0;
  for (const auto& p : options_.phases) {
    end += p.rounds();
    if (p.name() == phase.name()) break;
    auto it = round_model_.find(end);
    if (it == round_model_.end()) continue;
    const PublishedModel& m = models_.at(it->second);
    auto* previous = task.add_previous_phases();
    previous->set_phase(p.name());
    previous->set_digest(m.digest);
    previous->set_bytes(m.size);
    previous->set_signature(m.signature);
  }
  task.set_deadline_unix_s(d.deadline_s);
  return task;
}

absl::Status FederatedJob::PrepareRoundLocked(double now_s) {
  if (orchestrator_.state() != RoundState::kOpen ||
      prepared_token_ == orchestrator_.round_token()) {
    return absl::OkStatus();
  }
  const int64_t round = orchestrator_.current_round();
  auto start = StartModelOf(round);
  if (!start.ok()) return start.status();
  // Every published model was verified when registered (read back in full at startup, or
  // written by this process), so its digest is not recomputed for each round.
  auto file = tensors::SafetensorsFile::Open(start->path, {.verify_digest = false});
  if (!file.ok()) return file.status();
  if (file->digest() != start->digest) {
    return absl::DataLossError(absl::StrCat(start->path.string(), ": stored digest ",
                                            file->digest(), " is not the registered ",
                                            start->digest));
  }
  const PhaseConfig& phase = PhaseConfigOf(round);
  auto policy = agg::ScopePolicy::FromProto(phase.scopes(), phase.model());
  if (!policy.ok()) return policy.status();
  std::vector<agg::SharedTensor> shared;
  for (const tensors::TensorInfo& info : file->tensors()) {
    auto scope = policy->Resolve(info.name);
    if (!scope.ok()) return scope.status();
    auto values = file->DataAs<float>(info.name);
    if (!values.ok()) return values.status();
    shared.push_back({{info.name, info.shape, *values}, *scope});
  }
  start_model_.emplace(std::move(*file));
  agg::FoldOptions fold;
  fold.batch = options_.aggregation_batch;
  // What the fold has added is dropped from the mapped update files' resident pages at once, so
  // resident memory does not grow with the batch (the pages stay in the page cache).
  fold.release = [](std::span<const float> values) {
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(values.data()) + page - 1) & ~(page - 1);
    const uintptr_t end = reinterpret_cast<uintptr_t>(values.data() + values.size()) & ~(page - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  };
  auto strategy = agg::StrategyOptionsFor(phase, options_.update_limits, std::move(fold));
  if (!strategy.ok()) return strategy.status();
  // FedAvgM / FedAdam continue from the moments of the phase's previous round.
  agg::ServerState server_state;
  if (strategy->server_optimizer != agg::ServerOptimizer::kSgd &&
      round != FirstRoundOf(phase.name())) {
    std::vector<std::string> names;
    std::vector<size_t> sizes;
    for (const agg::SharedTensor& t : shared) {
      names.push_back(t.start.name);
      sizes.push_back(t.start.values.size());
    }
    auto loaded = ReadServerState(store_.ServerStatePath(round - 1), names, sizes,
                                  strategy->server_optimizer == agg::ServerOptimizer::kAdam);
    if (loaded.ok()) {
      server_state = std::move(*loaded);
    } else {
      Log()->warn("round {} ({}): {}; the server optimizer starts from zero moments", round,
                  phase.name(), std::string(loaded.status().message()));
    }
  }
  aggregation_.reset();
  pending_updates_.clear();
  aggregation_ = std::make_unique<agg::RoundAggregation>(
      std::move(shared), std::move(*strategy), std::move(recycled_sums_), std::move(server_state));
  recycled_sums_.clear();
  prepared_token_ = orchestrator_.round_token();
  round_opened_s_ = now_s;
  round_record_ = {{"round", round},
                   {"phase", phase.name()},
                   {"attempt", orchestrator_.attempt()},
                   {"start_model", start->digest},
                   {"selected", std::vector<std::string>(orchestrator_.selected().begin(),
                                                         orchestrator_.selected().end())},
                   {"updates", nlohmann::json::object()},
                   {"metrics", nlohmann::json::object()}};
  Log()->info("round {} ({}) open: {} site(s) selected", round, phase.name(),
              orchestrator_.selected().size());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<UpdateSink>> FederatedJob::BeginUpload(
    const std::string& site, const fedjoint::v1::UploadHeader& header, double now_s) {
  std::lock_guard lock(mutex_);
  if (header.total_bytes() <= 0 || header.total_bytes() > options_.max_update_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("update from site '", site, "': declared size ", header.total_bytes(),
                     " bytes outside 1..", options_.max_update_bytes));
  }
  // Checked before the upload starts, so a site does not stream an update only to have it refused.
  if (auto metrics = MetricsJson(site, header.metrics()); !metrics.ok()) return metrics.status();
  if (auto s = PrepareRoundLocked(now_s); !s.ok()) return s;
  auto token = orchestrator_.BeginUpdate(site, header.round(), header.num_samples(), now_s);
  if (!token.ok()) return token.status();
  auto sink = std::unique_ptr<UploadSink>(new UploadSink());
  sink->site_ = site;
  sink->header_ = header;
  sink->token_ = *token;
  auto spool =
      UploadSpool::Create(store_.dir() / "uploads", absl::StrCat(site, "-r", header.round()),
                          absl::StrCat("update from site '", site, "'"), header.total_bytes());
  if (!spool.ok()) {
    orchestrator_.EndUpdate(site, *token, false, now_s);
    return spool.status();
  }
  sink->spool_ = std::move(*spool);
  sink->job_ = this;
  return std::unique_ptr<UpdateSink>(std::move(sink));
}

void FederatedJob::AbortUpload(UploadSink* sink) {
  std::lock_guard lock(mutex_);
  orchestrator_.EndUpdate(sink->site_, sink->token_, false, 0);
}

absl::StatusOr<std::string> FederatedJob::FinishUpload(std::unique_ptr<UpdateSink> update,
                                                       const std::string& sha256_hex,
                                                       double now_s) {
  auto* spooled = dynamic_cast<UploadSink*>(update.get());
  if (spooled == nullptr || spooled->job_ != this) {
    return absl::InvalidArgumentError("FinishUpload: the update was not begun by this job");
  }
  std::unique_ptr<UploadSink> sink(static_cast<UploadSink*>(update.release()));
  const std::string site = sink->site_;
  const std::string who = absl::StrCat("update from site '", site, "'");
  absl::Status failure;
  std::optional<tensors::SafetensorsFile> file;
  if (auto finished = sink->spool_->Finish(sha256_hex); finished.ok()) {
    file.emplace(std::move(*finished));
  } else {
    failure = finished.status();
  }

  std::lock_guard lock(mutex_);
  sink->finished_ = true;
  if (failure.ok() &&
      (sink->token_ != orchestrator_.round_token() || orchestrator_.state() != RoundState::kOpen)) {
    failure = absl::FailedPreconditionError(
        absl::StrCat(who, " for round ", sink->header_.round(), " refused: the round closed"));
  }
  std::vector<agg::TensorView> views;
  if (failure.ok()) {
    for (const tensors::TensorInfo& info : file->tensors()) {
      if (info.dtype != tensors::DType::kF32) {
        failure = absl::InvalidArgumentError(
            absl::StrCat(who, ": tensor '", info.name, "' has dtype ",
                         std::string(tensors::DTypeName(info.dtype)), ", expected F32"));
        break;
      }
      auto values = file->DataAs<float>(info.name);
      if (!values.ok()) {
        failure = values.status();
        break;
      }
      views.push_back({info.name, info.shape, *values});
    }
  }
  const std::vector<std::string> joints = SiteJoints(orchestrator_, site);
  std::vector<agg::Prototype> protos;
  for (const auto& p : sink->header_.prototypes()) {
    protos.push_back({p.domain(), p.scale(), {p.values().begin(), p.values().end()}, p.count()});
  }
  if (failure.ok()) {
    failure = aggregation_->Add(site, joints, views, sink->header_.num_samples(), protos,
                                agg::ValueCheck::kAlreadyChecked);
  }
  orchestrator_.EndUpdate(site, sink->token_, failure.ok(), now_s);
  if (!failure.ok()) {
    Log()->warn("{}", std::string(failure.message()));
    return failure;
  }
  round_record_["updates"][site] = {{"num_samples", sink->header_.num_samples()},
                                    {"digest", file->digest()},
                                    {"bytes", sink->spool_->received()},
                                    {"received_unix_s", now_s}};
  // Recorded with the update, under the same lock: the round cannot be finalized in between.
  if (!sink->header_.metrics().empty()) {
    round_record_["metrics"][site] = *MetricsJson(site, sink->header_.metrics());
  }
  Log()->info("round {}: accepted update from '{}' ({} samples, {:.1f} MB)", sink->header_.round(),
              site, sink->header_.num_samples(), double(sink->spool_->received()) / 1e6);
  std::string digest = file->digest();
  // Queued updates are read from their files when the aggregator folds them in (the spool file is
  // unlinked when the sink goes, the mapping keeps it readable).
  if (aggregation_->pending() == 0) {
    pending_updates_.clear();
  } else {
    pending_updates_.push_back(std::move(*file));
  }
  return digest;
}

absl::StatusOr<fedjoint::v1::HeartbeatResponse> FederatedJob::Heartbeat(
    const std::string& site, const fedjoint::v1::HeartbeatRequest& request, double now_s) {
  std::lock_guard lock(mutex_);
  orchestrator_.Touch(site, now_s);
  if (auto it = state_.sites.find(site); it != state_.sites.end()) {
    it->second.last_contact_unix_s = now_s;
  }
  if (orchestrator_.state() == RoundState::kOpen &&
      request.round() == orchestrator_.current_round()) {
    round_record_["progress"][site] = request.progress();
  }
  fedjoint::v1::HeartbeatResponse response;
  response.set_current_round(orchestrator_.current_round());
  return response;
}

absl::Status FederatedJob::ReportMetrics(const std::string& site,
                                         const fedjoint::v1::MetricsReport& report, double now_s) {
  std::lock_guard lock(mutex_);
  orchestrator_.Touch(site, now_s);
  auto values = MetricsJson(site, report.values());
  if (!values.ok()) return values.status();
  // Older agents report metrics after their upload; those of the upload that completed a round
  // arrive after it was finalized and are not recorded (current agents send them in the header).
  if (orchestrator_.state() == RoundState::kOpen &&
      report.round() == orchestrator_.current_round()) {
    round_record_["metrics"][site] = std::move(*values);
  }
  return absl::OkStatus();
}

absl::Status FederatedJob::FinalizeLocked(const FinalizeRequest& request, double now_s) {
  // Durations for the log; the round's times are the caller's clock.
  using Steady = std::chrono::steady_clock;
  auto seconds = [](Steady::duration d) { return std::chrono::duration<double>(d).count(); };
  const auto t0 = Steady::now();
  auto result = aggregation_->Finalize();
  pending_updates_.clear();
  if (!result.ok()) return result.status();
  std::vector<std::vector<float>>& averaged = result->tensors;
  const auto& infos = start_model_->tensors();
  const auto t1 = Steady::now();
  std::vector<tensors::TensorRef> refs;
  for (size_t i = 0; i < infos.size(); ++i) {
    refs.push_back({infos[i].name, tensors::DType::kF32, infos[i].shape,
                    std::as_bytes(std::span<const float>(averaged[i]))});
  }
  auto written = store_.WriteModel(
      request.round, refs,
      ModelMetadata(PhaseConfigOf(request.round), options_.job_id, request.round), *signer_);
  if (!written.ok()) return written.status();
  auto model = Register(store_.ModelPath(request.round), &*written);
  if (!model.ok()) return model.status();
  if (aggregation_->options().server_optimizer != agg::ServerOptimizer::kSgd) {
    std::vector<std::string> names;
    for (const auto& info : infos) names.push_back(info.name);
    if (auto s = WriteServerState(store_.ServerStatePath(request.round), names, result->state);
        !s.ok()) {
      return s;
    }
  }
  const std::string* digest = &written->digest;
  const auto t2 = Steady::now();

  const std::vector<agg::Prototype>& protos = result->prototypes;
  published_prototypes_.clear();
  nlohmann::json proto_json = nlohmann::json::array();
  for (const auto& p : protos) {
    fedjoint::v1::Prototype proto;
    proto.set_domain(p.domain);
    proto.set_scale(p.scale);
    proto.set_count(p.count);
    for (float v : p.values) proto.add_values(v);
    published_prototypes_.push_back(std::move(proto));
    proto_json.push_back(
        {{"domain", p.domain}, {"scale", p.scale}, {"count", p.count}, {"values", p.values}});
  }

  round_record_["sites"] = request.sites;
  round_record_["global_digest"] = *digest;
  round_record_["opened_unix_s"] = round_opened_s_;
  // When the round's model was on disk and signed (the caller's time is when it began closing).
  round_record_["finished_unix_s"] = now_s + seconds(t2 - t0);
  round_record_["prototypes"] = proto_json;
  state_.finished_rounds = request.round;
  state_.global_digest = *digest;
  state_.last_round_record = round_record_;
  for (const auto& site : request.sites) state_.sites[site].last_round_finished = request.round;
  if (auto s = store_.CommitRound(state_); !s.ok()) return s;
  round_model_[request.round] = *digest;
  orchestrator_.RoundPersisted(request.round);
  aggregation_.reset();
  recycled_sums_ = std::move(averaged);
  start_model_.reset();
  Log()->info(
      "round {} ({}) finished with {} update(s); global model {} (aggregate {:.3f} s, write and "
      "sign {:.3f} s, commit {:.3f} s)",
      request.round, request.phase, request.sites.size(), digest->substr(0, 12), seconds(t1 - t0),
      seconds(t2 - t1), seconds(Steady::now() - t2));
  return absl::OkStatus();
}

absl::Status FederatedJob::Tick(double now_s) {
  std::lock_guard lock(mutex_);
  std::optional<FinalizeRequest> finalize = orchestrator_.Poll(now_s);
  if (finalize) {
    if (auto s = FinalizeLocked(*finalize, now_s); !s.ok()) return s;
    orchestrator_.Poll(now_s);  // open the next round at once when sites are there
  }
  return PrepareRoundLocked(now_s);
}

RoundState FederatedJob::state() const {
  std::lock_guard lock(mutex_);
  return orchestrator_.state();
}

TaskEpoch FederatedJob::task_epoch() const {
  std::lock_guard lock(mutex_);
  return {static_cast<int>(orchestrator_.state()), orchestrator_.round_token(),
          orchestrator_.finished_rounds()};
}

int64_t FederatedJob::finished_rounds() const {
  std::lock_guard lock(mutex_);
  return orchestrator_.finished_rounds();
}

}  // namespace fedjoint::coordinator
