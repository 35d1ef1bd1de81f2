#include "coordinator/round/orchestrator.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace fedjoint::coordinator {

Orchestrator::Orchestrator(OrchestratorOptions options, std::vector<PhasePlan> phases,
                           int64_t finished_rounds)
    : options_(options),
      phases_(std::move(phases)),
      finished_rounds_(finished_rounds),
      rng_(options.seed) {
  if (finished_rounds_ >= total_rounds()) state_ = RoundState::kDone;
}

int64_t Orchestrator::total_rounds() const {
  int64_t total = 0;
  for (const auto& p : phases_) total += p.rounds;
  return total;
}

std::string Orchestrator::PhaseOf(int64_t round) const {
  int64_t end = 0;
  for (const auto& p : phases_) {
    end += p.rounds;
    if (round <= end) return p.name;
  }
  return "";
}

int64_t Orchestrator::SamplesOf(const std::string& site) const {
  auto it = sites_.find(site);
  if (it == sites_.end()) return 0;
  int64_t total = 0;
  for (const auto& [joint, n] : it->second.samples_by_joint) total += n;
  return total;
}

absl::Status Orchestrator::Join(const std::string& site,
                                std::map<std::string, int64_t> samples_by_joint, double now_s) {
  for (const auto& [joint, n] : samples_by_joint) {
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("site '", site, "' declared ", n, " samples for joint '", joint, "'"));
    }
  }
  SiteState& s = sites_[site];
  s.name = site;
  s.samples_by_joint = std::move(samples_by_joint);
  s.last_contact_s = now_s;
  return absl::OkStatus();
}

void Orchestrator::Touch(const std::string& site, double now_s) {
  auto it = sites_.find(site);
  if (it != sites_.end()) it->second.last_contact_s = std::max(it->second.last_contact_s, now_s);
}

std::vector<std::string> Orchestrator::AliveSites(double now_s) const {
  std::vector<std::string> alive;
  for (const auto& [name, s] : sites_) {
    if (now_s - s.last_contact_s <= options_.site_timeout_s) alive.push_back(name);
  }
  return alive;
}

void Orchestrator::OpenRound(double now_s) {
  std::vector<std::string> alive = AliveSites(now_s);
  size_t want = static_cast<size_t>(std::ceil(options_.site_fraction * double(alive.size())));
  want = std::clamp(want, std::min(alive.size(), size_t(std::max(1, options_.min_updates))),
                    alive.size());
  std::shuffle(alive.begin(), alive.end(), rng_);
  selected_ = std::set<std::string>(alive.begin(), alive.begin() + long(want));
  uploading_.clear();
  accepted_.clear();
  round_ = finished_rounds_ + 1;
  deadline_s_ = now_s + options_.round_deadline_s;
  ++token_;
  state_ = RoundState::kOpen;
}

std::optional<FinalizeRequest> Orchestrator::CloseRound(double now_s) {
  if (static_cast<int>(accepted_.size()) >= options_.min_updates) {
    state_ = RoundState::kFinalizing;
    return FinalizeRequest{round_, PhaseOf(round_),
                           std::vector<std::string>(accepted_.begin(), accepted_.end())};
  }
  // Too few updates: the round is retried with whoever is alive, under the same number.
  ++attempt_;
  selected_.clear();
  uploading_.clear();
  accepted_.clear();
  state_ =
      attempt_ > options_.max_round_retries ? RoundState::kFailed : RoundState::kWaitingForSites;
  if (state_ == RoundState::kWaitingForSites) {
    // Re-open immediately when enough sites are still alive.
    if (static_cast<int>(AliveSites(now_s).size()) >= options_.min_sites) OpenRound(now_s);
  }
  return std::nullopt;
}

std::optional<FinalizeRequest> Orchestrator::Poll(double now_s) {
  switch (state_) {
    case RoundState::kWaitingForSites:
      if (static_cast<int>(AliveSites(now_s).size()) >= options_.min_sites) OpenRound(now_s);
      return std::nullopt;
    case RoundState::kOpen: {
      bool all_answered = std::all_of(selected_.begin(), selected_.end(),
                                      [&](const auto& s) { return accepted_.count(s) > 0; });
      if (all_answered || now_s >= deadline_s_) return CloseRound(now_s);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

TaskDecision Orchestrator::TaskFor(const std::string& site, double now_s) {
  Touch(site, now_s);
  TaskDecision d;
  if (state_ == RoundState::kDone) {
    d.kind = TaskDecision::Kind::kDone;
    d.round = finished_rounds_;
    d.phase = PhaseOf(finished_rounds_);
    return d;
  }
  if (state_ == RoundState::kOpen && selected_.count(site) && !accepted_.count(site)) {
    d.kind = TaskDecision::Kind::kTrain;
    d.round = round_;
    d.phase = PhaseOf(round_);
    d.deadline_s = deadline_s_;
  }
  return d;
}

absl::StatusOr<int64_t> Orchestrator::BeginUpdate(const std::string& site, int64_t round,
                                                  int64_t num_samples, double now_s) {
  Touch(site, now_s);
  if (state_ != RoundState::kOpen || round != round_) {
    std::string why;
    if (round <= finished_rounds_) {
      why = absl::StrCat("stale round (round ", round, " is finished)");
    } else if (state_ != RoundState::kOpen) {
      why = "no round is open";
    } else {
      why = absl::StrCat("round ", round, " is not open (the open round is ", round_, ")");
    }
    return absl::FailedPreconditionError(
        absl::StrCat("update from site '", site, "' for round ", round, " refused: ", why));
  }
  if (!selected_.count(site)) {
    return absl::FailedPreconditionError(absl::StrCat("update from site '", site, "' for round ",
                                                      round, " refused: site not selected"));
  }
  if (accepted_.count(site) || uploading_.count(site)) {
    return absl::AlreadyExistsError(
        absl::StrCat("update from site '", site, "' for round ", round, " refused: duplicate (",
                     accepted_.count(site) ? "already accepted" : "an upload is in progress", ")"));
  }
  const int64_t declared = SamplesOf(site);
  if (num_samples <= 0 || num_samples > declared) {
    return absl::InvalidArgumentError(
        absl::StrCat("update from site '", site, "' for round ", round, " refused: sample count ",
                     num_samples, " outside 1..", declared, " (declared when it joined)"));
  }
  uploading_.insert(site);
  return token_;
}

void Orchestrator::EndUpdate(const std::string& site, int64_t token, bool accepted, double now_s) {
  Touch(site, now_s);
  if (token != token_ || state_ != RoundState::kOpen) return;
  uploading_.erase(site);
  if (accepted) accepted_.insert(site);
}

void Orchestrator::RoundPersisted(int64_t round) {
  if (state_ != RoundState::kFinalizing || round != round_) return;
  finished_rounds_ = round_;
  for (const auto& site : accepted_) sites_[site].last_round_finished = round_;
  attempt_ = 0;
  selected_.clear();
  uploading_.clear();
  accepted_.clear();
  state_ = finished_rounds_ >= total_rounds() ? RoundState::kDone : RoundState::kWaitingForSites;
}

}  // namespace fedjoint::coordinator
