// The coordinator's round state machine: which round is open, which sites take part, when a round
// closes and whether it finalizes or is retried. No network, no files, no clocks — the caller
// passes the time in — so every path (stragglers, dead sites, stale and duplicate updates,
// retries, resume after a crash) is a plain unit test.
//
//   WAITING_FOR_SITES --(>= min_sites joined and alive)--> OPEN(round r, selected sites, deadline)
//   OPEN --(all selected answered, or deadline passed)--> CLOSED
//   CLOSED --(>= min_updates)--> FINALIZING --(model persisted)--> next round / next phase / DONE
//   CLOSED --(too few updates)--> retry round r (same number), up to max_retries, then FAILED
//
// Rounds are numbered 1, 2, ... across the whole job; each phase owns a consecutive block.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedjoint::coordinator {

struct OrchestratorOptions {
  int min_sites = 2;
  int min_updates = 2;
  double round_deadline_s = 600;
  double site_fraction = 1.0;  // fraction of alive sites selected per round
  int max_round_retries = 3;
  // A site not heard from (join, task poll, heartbeat, upload) for this long is considered dead
  // and is not selected for new rounds.
  double site_timeout_s = 120;
  uint64_t seed = 1;
};

struct PhasePlan {
  std::string name;
  int rounds = 1;
};

struct SiteState {
  std::string name;
  std::map<std::string, int64_t> samples_by_joint;  // declared at join
  double last_contact_s = 0;
  int64_t last_round_finished = 0;
};

enum class RoundState { kWaitingForSites, kOpen, kFinalizing, kDone, kFailed };

struct TaskDecision {
  enum class Kind { kWait, kTrain, kDone };
  Kind kind = Kind::kWait;
  int64_t round = 0;
  std::string phase;
  double deadline_s = 0;
};

// What the caller must do to finish the current round: aggregate the accepted updates (it has
// been doing so as they arrived), persist the new global model, then call RoundPersisted().
struct FinalizeRequest {
  int64_t round = 0;
  std::string phase;
  std::vector<std::string> sites;  // those whose updates were accepted
};

class Orchestrator {
 public:
  // `finished_rounds`: rounds already persisted (0 for a new job, or the value from the state
  // file after a restart — the interrupted round restarts cleanly with no update carried over).
  Orchestrator(OrchestratorOptions options, std::vector<PhasePlan> phases,
               int64_t finished_rounds = 0);

  // A site joins (or re-joins after a restart of either side). Declared samples bound what its
  // updates may claim.
  absl::Status Join(const std::string& site, std::map<std::string, int64_t> samples_by_joint,
                    double now_s);
  void Touch(const std::string& site, double now_s);

  // Advances time: opens a round when enough sites are alive, closes it at the deadline.
  // Returns a FinalizeRequest when the current round must be finalized.
  std::optional<FinalizeRequest> Poll(double now_s);

  TaskDecision TaskFor(const std::string& site, double now_s);

  // An upload for (round) begins: refused with FailedPrecondition when the round is stale or not
  // open or the site was not selected; AlreadyExists when it already sent an update or has one in
  // flight (duplicate); InvalidArgument when it claims more samples than it declared. On OK the
  // site is marked as uploading so a concurrent duplicate is refused too, and the returned token
  // identifies this opening of the round (a retried round has the same number but a new token).
  absl::StatusOr<int64_t> BeginUpdate(const std::string& site, int64_t round, int64_t num_samples,
                                      double now_s);
  // The upload was validated and aggregated (accepted = true), or failed (then the site may retry
  // within the same round). Ignored when the round it began in has closed meanwhile.
  void EndUpdate(const std::string& site, int64_t token, bool accepted, double now_s);
  // The token of the round currently open (changes on every opening, retries included).
  int64_t round_token() const { return token_; }

  // The global model of `round` is safely on disk.
  void RoundPersisted(int64_t round);

  RoundState state() const { return state_; }
  int64_t current_round() const { return round_; }
  int64_t finished_rounds() const { return finished_rounds_; }
  int64_t total_rounds() const;
  std::string PhaseOf(int64_t round) const;
  int attempt() const { return attempt_; }
  const std::map<std::string, SiteState>& sites() const { return sites_; }
  const std::set<std::string>& selected() const { return selected_; }
  int64_t SamplesOf(const std::string& site) const;

 private:
  std::vector<std::string> AliveSites(double now_s) const;
  void OpenRound(double now_s);
  std::optional<FinalizeRequest> CloseRound(double now_s);

  OrchestratorOptions options_;
  std::vector<PhasePlan> phases_;
  std::map<std::string, SiteState> sites_;
  RoundState state_ = RoundState::kWaitingForSites;
  int64_t finished_rounds_ = 0;
  int64_t round_ = 0;  // the round open or being finalized (0 when none)
  int attempt_ = 0;
  double deadline_s_ = 0;
  int64_t token_ = 0;
  std::set<std::string> selected_;
  std::set<std::string> uploading_;
  std::set<std::string> accepted_;
  std::mt19937_64 rng_;
};

}  // namespace fedjoint::coordinator
