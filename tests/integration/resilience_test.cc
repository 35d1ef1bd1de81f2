// Kills in the middle of a round, over real gRPC + mutual TLS on loopback (fixture in
// federation_fixture.h): a site dying mid-upload, the coordinator dying mid-round and restarting
// on its state folder, a site agent dying mid-training and rerun on its state folder.
#include <ATen/ATen.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <spdlog/sinks/ringbuffer_sink.h>

#include "common/base/atomic_file.h"
#include "common/log/logging.h"
#include "common/security/model_signing.h"
#include "common/security/tls_credentials.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/torch_tensors.h"
#include "tests/integration/federation_fixture.h"

namespace fedjoint::integration {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::UnorderedElementsAre;

// The site's last finished round according to its progress file (0 when none).
int64_t LastRoundOf(const fs::path& site_state) {
  auto text = common::base::ReadSmallFile(site_state / "progress.json");
  if (!text.ok()) return 0;
  auto json = nlohmann::json::parse(*text, nullptr, false);
  return json.is_discarded() ? 0 : json.value("last_round", int64_t{0});
}

std::vector<std::string> Keys(const nlohmann::json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  return keys;
}

// A gate a fake trainer can wait at (a site busy training until the test says otherwise).
class Gate {
 public:
  void Wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return open_; });
  }
  void Open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

class ResilienceTest : public FederationTest {
 protected:
  std::unique_ptr<v1::Federation::Stub> Stub(const std::string& site) {
    auto credentials = common::security::LoadClientCredentials(
        dir_ / "pki/ca.crt", dir_ / site / "pki" / (site + ".crt"),
        dir_ / site / "pki" / (site + ".key"));
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    return v1::Federation::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), *credentials));
  }
};

// site-c joins, gets its task and dies half-way through its upload (the stream is cancelled, as
// when its process is killed). The round must not wait for it beyond the deadline, must finalize
// with the two updates that arrived, and must average exactly those.
TEST_F(ResilienceTest, SiteKilledMidUploadRoundFinalizesAtDeadlineWithTheOthers) {
  constexpr double kDeadline = 1.5;
  StartCoordinator({.rounds = 1, .min_sites = 3, .min_updates = 2, .deadline_s = kDeadline});
  FakeTrainer a("knee", 1, 10), b("knee", 2, 30);
  absl::Status sa, sb;
  std::jthread ta([&] { sa = RunSite("site-a", &a, {{"knee", 10}}); });
  std::jthread tb([&] { sb = RunSite("site-b", &b, {{"knee", 30}}); });

  auto c = Stub("site-c");
  {
    grpc::ClientContext context;
    v1::JoinRequest join;
    join.set_version(v1::PROTOCOL_VERSION_1);
    join.set_site("site-c");
    auto* d = join.add_domains();
    d->set_joint("ankle");
    d->set_num_samples(20);
    v1::JoinResponse joined;
    ASSERT_TRUE(c->Join(&context, join, &joined).ok());
  }
  v1::Task task;
  ASSERT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext context;
        v1::TaskRequest request;
        request.set_site("site-c");
        return c->GetTask(&context, request, &task).ok() && task.kind() == v1::Task::TRAIN;
      },
      10));
  ASSERT_EQ(task.round(), 1);
  {
    // Half an update, then the process "dies".
    auto payload =
        common::tensors::SerializeSafetensors({{"encoder.conv.weight", at::full({2, 3}, 500.f)},
                                               {"heads.ankle.weight", at::full({2}, 500.f)}});
    ASSERT_TRUE(payload.ok());
    grpc::ClientContext context;
    v1::UploadResponse response;
    auto writer = c->UploadUpdate(&context, &response);
    v1::UploadMessage header;
    header.mutable_header()->set_site("site-c");
    header.mutable_header()->set_round(1);
    header.mutable_header()->set_num_samples(20);
    header.mutable_header()->set_total_bytes(int64_t(payload->size()));
    ASSERT_TRUE(writer->Write(header));
    v1::UploadMessage chunk;
    chunk.mutable_chunk()->set_offset(0);
    chunk.mutable_chunk()->set_data(payload->substr(0, payload->size() / 2));
    ASSERT_TRUE(writer->Write(chunk));
    context.TryCancel();
    EXPECT_FALSE(writer->Finish().ok());
  }
  c.reset();

  ta.join();
  tb.join();
  ASSERT_TRUE(sa.ok()) << sa;
  ASSERT_TRUE(sb.ok()) << sb;
  EXPECT_EQ(job_->finished_rounds(), 1);

  auto log = RoundLog(dir_ / "state");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_THAT(log[0]["selected"].get<std::vector<std::string>>(),
              UnorderedElementsAre("site-a", "site-b", "site-c"));
  EXPECT_THAT(log[0]["sites"].get<std::vector<std::string>>(),
              UnorderedElementsAre("site-a", "site-b"));
  EXPECT_THAT(Keys(log[0]["updates"]), UnorderedElementsAre("site-a", "site-b"));
  EXPECT_EQ(log[0]["updates"]["site-a"]["num_samples"], 10);
  EXPECT_EQ(log[0]["updates"]["site-b"]["num_samples"], 30);
  // It waited for the dead site until the deadline, and not much longer.
  const double took =
      log[0]["finished_unix_s"].get<double>() - log[0]["opened_unix_s"].get<double>();
  EXPECT_GE(took, kDeadline - 0.05);
  EXPECT_LT(took, kDeadline + 3);

  // The weighted average of the two updates that arrived: (10 * 1 + 30 * 2) / 40 = 1.75; the
  // ankle head (only site-c holds ankle) keeps its value, and nothing of the half upload shows.
  auto model =
      common::tensors::SafetensorsFile::Open(dir_ / "state/rounds/0001/global.safetensors");
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> conv = Values(*model, "encoder.conv.weight");
  ASSERT_EQ(conv.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(conv[i], float(i) + 1.75f, 1e-5) << i;
  EXPECT_THAT(Values(*model, "heads.knee.weight"),
              ElementsAre(FloatNear(11.75f, 1e-5), FloatNear(21.75f, 1e-5)));
  EXPECT_THAT(Values(*model, "heads.ankle.weight"), ElementsAre(30.f, 40.f));
  // The half upload's spool file is gone.
  EXPECT_TRUE(fs::is_empty(dir_ / "state/uploads"));
}

// The coordinator dies in round 2 after two of three updates arrived. Restarted on the same
// state folder it resumes after round 1 (nothing of it lost), restarts round 2 from scratch, and
// counts each site once: the updates that reached the dead coordinator are not in round 2's model
// (the sites send new ones, recognisably different, to the restarted round).
TEST_F(ResilienceTest, CoordinatorKilledMidRoundResumesWithoutLosingOrDoubleCounting) {
  client_max_attempts_ = 0;  // sites keep trying while the coordinator is down
  StartCoordinator({.rounds = 2, .min_sites = 3, .deadline_s = 60});
  // Deltas by call: round 1, round 2 before the kill, round 2 again after the restart.
  auto deltas = [](std::vector<float> by_call) {
    return [by_call](int call) { return by_call.at(size_t(std::min<int>(call, 3) - 1)); };
  };
  FakeTrainer a("knee", 0, 10), b("knee", 0, 30), c("ankle", 0, 20);
  a.delta_for = deltas({1, 100, 2});
  b.delta_for = deltas({2, 200, 3});
  c.delta_for = deltas({3, 300, 4});
  Gate c_busy;  // site-c is still training round 2 when the coordinator dies
  c.on_train = [&](int call) {
    if (call == 2) c_busy.Wait();
  };
  absl::Status sa, sb, sc;
  std::jthread ta([&] { sa = RunSite("site-a", &a, {{"knee", 10}}); });
  std::jthread tb([&] { sb = RunSite("site-b", &b, {{"knee", 30}}); });
  std::jthread tc([&] { sc = RunSite("site-c", &c, {{"ankle", 20}}); });
  // However the test ends, site-c is let go so the threads can be joined.
  struct OpenOnExit {
    Gate& gate;
    ~OpenOnExit() { gate.Open(); }
  } open_on_exit{c_busy};
  auto join_all = [&] {
    c_busy.Open();
    ta.join();
    tb.join();
    tc.join();
  };

  // Round 2 is open; site-a's and site-b's updates were accepted (their progress files say so,
  // written after the coordinator answered), site-c is training.
  const bool mid_round = WaitFor(
      [&] {
        return LastRoundOf(dir_ / "site-a/state") == 2 && LastRoundOf(dir_ / "site-b/state") == 2 &&
               c.calls == 2;
      },
      20);
  ASSERT_TRUE(mid_round);
  KillCoordinator();

  const auto before = RoundLog(dir_ / "state");
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0]["round"], 1);
  EXPECT_FALSE(fs::exists(dir_ / "state/rounds/0002"));
  // What a kill mid-upload leaves behind (an in-process kill runs destructors, a real one not).
  {
    std::ofstream stray(dir_ / "state/uploads/site-c-r2-12345.part");
    stray << "half an update";
  }

  StartCoordinator({.rounds = 2, .min_sites = 3, .deadline_s = 60, .port = port_});
  EXPECT_EQ(job_->finished_rounds(), 1);
  EXPECT_TRUE(fs::is_empty(dir_ / "state/uploads")) << "stray upload spool files are removed";
  c_busy.Open();
  join_all();
  ASSERT_TRUE(sa.ok()) << sa;
  ASSERT_TRUE(sb.ok()) << sb;
  ASSERT_TRUE(sc.ok()) << sc;
  EXPECT_EQ(job_->finished_rounds(), 2);
  EXPECT_EQ(a.calls, 3);
  EXPECT_EQ(b.calls, 3);

  const auto log = RoundLog(dir_ / "state");
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].dump(), before[0].dump()) << "round 1's record is untouched";
  EXPECT_EQ(log[1]["round"], 2);
  EXPECT_THAT(log[1]["sites"].get<std::vector<std::string>>(),
              UnorderedElementsAre("site-a", "site-b", "site-c"));
  int64_t samples = 0;
  for (const auto& [site, update] : log[1]["updates"].items())
    samples += update["num_samples"].get<int64_t>();
  EXPECT_EQ(samples, 60) << "each site counted once";

  // Round 1: global += (10*1 + 30*2 + 20*3) / 60, knee += (10*1 + 30*2) / 40, ankle += 3.
  // Round 2 (restarted): global += (10*2 + 30*3 + 20*4) / 60, knee += 2.75, ankle += 4. Any of the
  // pre-kill updates (deltas 100, 200) would move these by tens.
  auto model =
      common::tensors::SafetensorsFile::Open(dir_ / "state/rounds/0002/global.safetensors");
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> conv = Values(*model, "encoder.conv.weight");
  ASSERT_EQ(conv.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(conv[i], float(i) + 320.f / 60.f, 1e-4) << i;
  EXPECT_THAT(Values(*model, "heads.knee.weight"),
              ElementsAre(FloatNear(14.5f, 1e-4), FloatNear(24.5f, 1e-4)));
  EXPECT_THAT(Values(*model, "heads.ankle.weight"),
              ElementsAre(FloatNear(37.f, 1e-4), FloatNear(47.f, 1e-4)));

  // Site-scoped tensors advance once per round the site finished (round 2 trained twice counts
  // once): site-a's round-2 training for the dead coordinator is not stacked on its own result.
  auto own = common::tensors::LoadSafetensors(dir_ / "site-a/state/site/segmentation.safetensors");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_FLOAT_EQ(own->at("encoder.bn.norms.knee.running_mean")[0].item<float>(), 2000.f);
}

// site-a's agent dies while training round 2. Rerun on the same state folder it re-joins, takes
// part in round 2 (still open, waiting for it) and round 3, starting from its saved site-scoped
// tensors: they have advanced once per round, as if it had never died.
TEST_F(ResilienceTest, SiteKilledMidTrainingRerunResumesWithItsOwnTensors) {
  StartCoordinator({.rounds = 3, .min_sites = 3, .deadline_s = 60});
  FakeTrainer first_a("knee", 1, 10), b("knee", 2, 30), c("ankle", 3, 20);
  first_a.on_train = [](int call) {
    if (call == 2) throw SiteKilled{};
  };
  bool killed = false;
  absl::Status sa, sb, sc;
  std::jthread ta([&] {
    try {
      sa = RunSite("site-a", &first_a, {{"knee", 10}});
    } catch (const SiteKilled&) {
      killed = true;
    }
  });
  std::jthread tb([&] { sb = RunSite("site-b", &b, {{"knee", 30}}); });
  std::jthread tc([&] { sc = RunSite("site-c", &c, {{"ankle", 20}}); });
  ta.join();
  ASSERT_TRUE(killed) << sa;
  EXPECT_EQ(LastRoundOf(dir_ / "site-a/state"), 1);

  FakeTrainer second_a("knee", 1, 10);
  sa = RunSite("site-a", &second_a, {{"knee", 10}});
  tb.join();
  tc.join();
  ASSERT_TRUE(sa.ok()) << sa;
  ASSERT_TRUE(sb.ok()) << sb;
  ASSERT_TRUE(sc.ok()) << sc;
  EXPECT_EQ(second_a.calls, 2) << "rounds 2 and 3";
  EXPECT_EQ(job_->finished_rounds(), 3);

  const auto log = RoundLog(dir_ / "state");
  ASSERT_EQ(log.size(), 3u);
  for (const auto& line : log) {
    EXPECT_THAT(line["sites"].get<std::vector<std::string>>(),
                UnorderedElementsAre("site-a", "site-b", "site-c"))
        << line["round"];
  }
  auto model =
      common::tensors::SafetensorsFile::Open(dir_ / "state/rounds/0003/global.safetensors");
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> conv = Values(*model, "encoder.conv.weight");
  ASSERT_EQ(conv.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(conv[i], float(i) + 3 * 130.f / 60.f, 1e-4) << i;

  // 1000 per round: round 1 before the kill, rounds 2 and 3 after (lost tensors would give 2000).
  auto own = common::tensors::LoadSafetensors(dir_ / "site-a/state/site/segmentation.safetensors");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_FLOAT_EQ(own->at("encoder.bn.norms.knee.running_mean")[0].item<float>(), 3000.f);
  auto final_a = common::tensors::LoadSafetensors(dir_ / "site-a/state/final/model.safetensors");
  ASSERT_TRUE(final_a.ok()) << final_a.status();
  EXPECT_FLOAT_EQ(final_a->at("encoder.bn.norms.knee.running_mean")[0].item<float>(), 3000.f);
}

// The site honours the task's deadline: training is asked to stop with time left for the upload,
// and an update whose training overran the deadline is not sent (the coordinator would refuse
// it); the site takes the retried round instead.
TEST_F(ResilienceTest, SiteStopsTrainingBeforeTheDeadlineAndSendsNothingLate) {
  constexpr double kDeadline = 1.0;
  StartCoordinator({.rounds = 1, .min_sites = 1, .deadline_s = kDeadline});
  FakeTrainer a("knee", 1, 10);
  a.on_train = [](int call) {
    // The first attempt overruns the deadline (a trainer that ignored the stop time).
    if (call == 1) std::this_thread::sleep_for(std::chrono::duration<double>(kDeadline + 0.3));
  };
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  auto site_log = common::log::Get("site");
  site_log->sinks().push_back(sink);
  absl::Status status = RunSite("site-a", &a, {{"knee", 10}});
  site_log->sinks().pop_back();
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(a.calls, 2);

  // Training was asked to stop before the deadline, leaving a fifth of the time for the upload.
  const auto [deadline, until] = a.deadline_and_train_until[0];
  EXPECT_GT(deadline, 0);
  EXPECT_LT(until, deadline);
  EXPECT_GE(until, deadline - 0.2 * kDeadline - 0.01);

  std::string messages;
  for (const std::string& line : sink->last_formatted()) messages += line;
  EXPECT_THAT(messages, ::testing::HasSubstr("round 1 (segmentation): the round's deadline passed "
                                             "during local training"));
  EXPECT_THAT(messages, ::testing::Not(::testing::HasSubstr("refused")))
      << "a late update was sent";
  const auto log = RoundLog(dir_ / "state");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["attempt"], 1) << "a retry (attempts count from 0): the first closed empty";
  EXPECT_THAT(Keys(log[0]["updates"]), UnorderedElementsAre("site-a"));
}

}  // namespace
}  // namespace fedjoint::integration
