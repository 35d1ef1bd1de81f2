#include "coordinator/store/checkpoint_store.h"

#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "common/security/pki.h"
#include "common/tensors/safetensors_file.h"

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fedjoint_store_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ASSERT_TRUE(common::security::InitPki(dir_ / "pki", {}).ok());
    auto signer =
        common::security::ModelSigner::Load(dir_ / "pki/signing.key", dir_ / "pki/signing.crt");
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_.emplace(std::move(*signer));
  }
  void TearDown() override { fs::remove_all(dir_); }

  JobState StateAfter(int64_t round, const std::string& digest) {
    JobState s;
    s.job_id = "job-1";
    s.finished_rounds = round;
    s.global_digest = digest;
    s.sites["site-a"] = {{{"knee", 40}}, 1000.5, round};
    s.last_round_record = {{"round", round}, {"sites", {"site-a"}}};
    return s;
  }

  std::string WriteRound(CheckpointStore& store, int64_t round) {
    std::vector<float> values = {float(round), 2, 3};
    common::tensors::TensorRef ref{"encoder.w",
                                   common::tensors::DType::kF32,
                                   {3},
                                   std::as_bytes(std::span<const float>(values))};
    auto written =
        store.WriteModel(round, std::span(&ref, 1), {{"round", std::to_string(round)}}, *signer_);
    EXPECT_TRUE(written.ok()) << written.status();
    if (!written.ok()) return std::string();
    // The SHA-256 taken while writing is the file's, and the signature covers it.
    auto file_sha = common::base::Sha256File(store.ModelPath(round));
    EXPECT_TRUE(file_sha.ok() && *file_sha == written->file_sha256);
    return written->digest;
  }

  fs::path dir_;
  std::optional<common::security::ModelSigner> signer_;
};

TEST_F(CheckpointStoreTest, FreshDirectoryHasNoState) {
  auto store = CheckpointStore::Open(dir_ / "state");
  ASSERT_TRUE(store.ok()) << store.status();
  auto state = store->LoadState();
  ASSERT_TRUE(state.ok());
  EXPECT_FALSE(state->has_value());
}

TEST_F(CheckpointStoreTest, CommitsRoundsWithSignedModels) {
  auto store = CheckpointStore::Open(dir_ / "state");
  ASSERT_TRUE(store.ok());
  for (int64_t r = 1; r <= 2; ++r) {
    std::string digest = WriteRound(*store, r);
    ASSERT_TRUE(store->CommitRound(StateAfter(r, digest)).ok());
  }
  EXPECT_TRUE(fs::exists(dir_ / "state/rounds/0002/global.safetensors"));
  auto verifier = common::security::SignatureVerifier::Load(dir_ / "pki/ca.crt");
  ASSERT_TRUE(verifier.ok());
  EXPECT_TRUE(verifier->VerifyFile(store->ModelPath(2)).ok());
  auto model = common::tensors::SafetensorsFile::Open(store->ModelPath(2));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->metadata().at("round"), "2");

  auto reopened = CheckpointStore::Open(dir_ / "state");
  ASSERT_TRUE(reopened.ok());
  auto state = reopened->LoadState();
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_EQ((*state)->finished_rounds, 2);
  EXPECT_EQ((*state)->global_digest, model->digest());
  EXPECT_EQ((*state)->sites.at("site-a").samples_by_joint.at("knee"), 40);
  auto log = reopened->ReadRoundLog();
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[1]["round"], 2);
}

TEST_F(CheckpointStoreTest, CrashBetweenStateAndLogIsRepairedOnce) {
  {
    auto store = CheckpointStore::Open(dir_ / "state");
    ASSERT_TRUE(store.ok());
    std::string d1 = WriteRound(*store, 1);
    ASSERT_TRUE(store->CommitRound(StateAfter(1, d1)).ok());
    std::string d2 = WriteRound(*store, 2);
    // The process dies after state.json but before the log append; and a torn line is left.
    ASSERT_TRUE(store->SaveState(StateAfter(2, d2)).ok());
    std::ofstream(dir_ / "state/rounds.jsonl", std::ios::app) << "{\"round\": 3, \"si";
  }
  for (int reopen = 0; reopen < 2; ++reopen) {
    auto store = CheckpointStore::Open(dir_ / "state");
    ASSERT_TRUE(store.ok()) << store.status();
    auto log = store->ReadRoundLog();
    ASSERT_TRUE(log.ok());
    ASSERT_EQ(log->size(), 2u) << "round 2 logged exactly once, torn line dropped";
    EXPECT_EQ((*log)[0]["round"], 1);
    EXPECT_EQ((*log)[1]["round"], 2);
  }
}

TEST_F(CheckpointStoreTest, CorruptOrInconsistentStateIsAnError) {
  fs::create_directories(dir_ / "state");
  ASSERT_TRUE(common::base::WriteFileAtomically(dir_ / "state/state.json", "{not json").ok());
  auto bad = CheckpointStore::Open(dir_ / "state");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("state.json: not valid JSON"));

  ASSERT_TRUE(common::base::WriteFileAtomically(dir_ / "state/state.json",
                                                ToJson(StateAfter(7, "abc")).dump())
                  .ok());
  auto missing = CheckpointStore::Open(dir_ / "state");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("says round 7 is finished but"));
}

}  // namespace
}  // namespace fedjoint::coordinator
