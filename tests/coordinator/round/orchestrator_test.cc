#include "coordinator/round/orchestrator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = TaskDecision::Kind;

OrchestratorOptions Options() {
  OrchestratorOptions o;
  o.min_sites = 2;
  o.min_updates = 2;
  o.round_deadline_s = 100;
  o.site_timeout_s = 50;
  return o;
}

std::vector<PhasePlan> TwoPhases() { return {{"shape_prior", 1}, {"segmentation", 2}}; }

// Joins sites a, b, c at time 0 with 10, 20, 30 samples.
Orchestrator Started(OrchestratorOptions options = Options()) {
  Orchestrator o(options, TwoPhases());
  EXPECT_TRUE(o.Join("a", {{"knee", 10}}, 0).ok());
  EXPECT_TRUE(o.Join("b", {{"knee", 20}}, 0).ok());
  EXPECT_TRUE(o.Join("c", {{"ankle", 30}}, 0).ok());
  return o;
}

void Upload(Orchestrator& o, const std::string& site, int64_t round, double now) {
  auto token = o.BeginUpdate(site, round, 5, now);
  ASSERT_TRUE(token.ok()) << token.status();
  o.EndUpdate(site, *token, true, now);
}

TEST(OrchestratorTest, WaitsForMinSitesThenOpensRoundOne) {
  Orchestrator o(Options(), TwoPhases());
  ASSERT_TRUE(o.Join("a", {{"knee", 10}}, 0).ok());
  EXPECT_FALSE(o.Poll(1).has_value());
  EXPECT_EQ(o.state(), RoundState::kWaitingForSites);
  EXPECT_EQ(o.TaskFor("a", 1).kind, Kind::kWait);
  ASSERT_TRUE(o.Join("b", {{"knee", 10}}, 2).ok());
  o.Poll(2);
  EXPECT_EQ(o.state(), RoundState::kOpen);
  TaskDecision t = o.TaskFor("a", 3);
  EXPECT_EQ(t.kind, Kind::kTrain);
  EXPECT_EQ(t.round, 1);
  EXPECT_EQ(t.phase, "shape_prior");
  EXPECT_EQ(t.deadline_s, 102);
}

TEST(OrchestratorTest, FullJobAcrossPhases) {
  Orchestrator o = Started();
  for (int64_t round = 1; round <= 3; ++round) {
    o.Poll(round * 10);
    ASSERT_EQ(o.state(), RoundState::kOpen);
    EXPECT_EQ(o.TaskFor("a", round * 10).phase, round == 1 ? "shape_prior" : "segmentation");
    for (const char* site : {"a", "b", "c"}) Upload(o, site, round, round * 10 + 1);
    EXPECT_EQ(o.TaskFor("a", round * 10 + 1).kind, Kind::kWait) << "a already answered";
    auto finalize = o.Poll(round * 10 + 2);
    ASSERT_TRUE(finalize.has_value());
    EXPECT_EQ(finalize->round, round);
    EXPECT_THAT(finalize->sites, ElementsAre("a", "b", "c"));
    o.RoundPersisted(round);
    EXPECT_EQ(o.finished_rounds(), round);
  }
  EXPECT_EQ(o.state(), RoundState::kDone);
  EXPECT_EQ(o.TaskFor("b", 100).kind, Kind::kDone);
}

TEST(OrchestratorTest, RefusesStaleDuplicateUnselectedAndInflatedUpdates) {
  Orchestrator o = Started();
  o.Poll(1);
  Upload(o, "a", 1, 2);
  auto dup = o.BeginUpdate("a", 1, 5, 3);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(dup.status().message(),
            "update from site 'a' for round 1 refused: duplicate (already accepted)");

  auto token = o.BeginUpdate("b", 1, 5, 3);
  ASSERT_TRUE(token.ok());
  auto concurrent = o.BeginUpdate("b", 1, 5, 3);
  ASSERT_FALSE(concurrent.ok());
  EXPECT_THAT(std::string(concurrent.status().message()),
              HasSubstr("duplicate (an upload is in progress)"));
  o.EndUpdate("b", *token, false, 4);  // that upload failed validation: b may try again
  EXPECT_TRUE(o.BeginUpdate("b", 1, 5, 4).ok());

  auto inflated = o.BeginUpdate("c", 1, 31, 4);
  ASSERT_FALSE(inflated.ok());
  EXPECT_EQ(inflated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(inflated.status().message(),
            "update from site 'c' for round 1 refused: sample count 31 outside 1..30 (declared "
            "when it joined)");

  auto future = o.BeginUpdate("c", 2, 5, 4);
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.status().message(),
            "update from site 'c' for round 2 refused: round 2 is not open (the open round is 1)");

  auto stranger = o.BeginUpdate("zed", 1, 5, 4);
  ASSERT_FALSE(stranger.ok());
  EXPECT_THAT(std::string(stranger.status().message()), HasSubstr("site not selected"));
}

TEST(OrchestratorTest, StaleRoundAfterFinalize) {
  Orchestrator o = Started();
  o.Poll(1);
  for (const char* site : {"a", "b", "c"}) Upload(o, site, 1, 2);
  ASSERT_TRUE(o.Poll(3).has_value());
  o.RoundPersisted(1);
  o.Poll(4);
  auto stale = o.BeginUpdate("a", 1, 5, 5);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(stale.status().message(),
            "update from site 'a' for round 1 refused: stale round (round 1 is finished)");
}

TEST(OrchestratorTest, DeadlineFinalizesWithThoseWhoAnswered) {
  Orchestrator o = Started();
  o.Poll(0);
  Upload(o, "a", 1, 10);
  Upload(o, "b", 1, 20);
  EXPECT_FALSE(o.Poll(99).has_value()) << "c may still answer before the deadline";
  auto f = o.Poll(100);
  ASSERT_TRUE(f.has_value());
  EXPECT_THAT(f->sites, ElementsAre("a", "b"));
  // c's late upload is refused.
  auto late = o.BeginUpdate("c", 1, 5, 101);
  EXPECT_FALSE(late.ok());
}

TEST(OrchestratorTest, TooFewUpdatesRetriesThenFails) {
  OrchestratorOptions options = Options();
  options.max_round_retries = 1;
  options.site_timeout_s = 1000;
  Orchestrator o = Started(options);
  o.Poll(0);
  int64_t first_token = o.round_token();
  auto token = o.BeginUpdate("a", 1, 5, 10);
  ASSERT_TRUE(token.ok());
  EXPECT_FALSE(o.Poll(100).has_value());
  // Retried at once, same round number, new token; a's old upload finishing now does not count.
  EXPECT_EQ(o.state(), RoundState::kOpen);
  EXPECT_EQ(o.current_round(), 1);
  EXPECT_EQ(o.attempt(), 1);
  EXPECT_NE(o.round_token(), first_token);
  o.EndUpdate("a", *token, true, 101);
  EXPECT_EQ(o.TaskFor("a", 101).kind, Kind::kTrain);
  EXPECT_FALSE(o.Poll(200).has_value());
  EXPECT_EQ(o.state(), RoundState::kFailed);
}

TEST(OrchestratorTest, DeadSitesAreNotSelected) {
  Orchestrator o = Started();
  // Only a and b keep in touch; c goes silent past the timeout.
  o.Touch("a", 60);
  o.Touch("b", 60);
  o.Poll(60);
  EXPECT_THAT(o.selected(), ElementsAre("a", "b"));
  EXPECT_EQ(o.TaskFor("c", 61).kind, Kind::kWait);
}

TEST(OrchestratorTest, ResumesAfterRestartFromFinishedRounds) {
  Orchestrator o(Options(), TwoPhases(), /*finished_rounds=*/2);
  ASSERT_TRUE(o.Join("a", {{"knee", 10}}, 0).ok());
  ASSERT_TRUE(o.Join("b", {{"knee", 10}}, 0).ok());
  o.Poll(0);
  EXPECT_EQ(o.current_round(), 3);
  EXPECT_EQ(o.TaskFor("a", 0).phase, "segmentation");
  Orchestrator done(Options(), TwoPhases(), 3);
  EXPECT_EQ(done.state(), RoundState::kDone);
}

TEST(OrchestratorTest, SiteFractionSelectsDeterministicSubset) {
  OrchestratorOptions options = Options();
  options.site_fraction = 0.5;
  options.min_updates = 1;
  Orchestrator o(options, TwoPhases());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(o.Join("s" + std::to_string(i), {{"knee", 1}}, 0).ok());
  o.Poll(0);
  EXPECT_EQ(o.selected().size(), 5u);
  Orchestrator again(options, TwoPhases());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(again.Join("s" + std::to_string(i), {{"knee", 1}}, 0).ok());
  again.Poll(0);
  EXPECT_EQ(o.selected(), again.selected());
}

}  // namespace
}  // namespace fedjoint::coordinator
