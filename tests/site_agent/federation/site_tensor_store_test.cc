#include "site_agent/federation/site_tensor_store.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;
using common::tensors::TensorMap;

class SiteTensorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fedjoint_sts_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The value the tensors for `round` start from (-1 when there are none).
  float StartOf(const SiteTensorStore& store, int64_t round) {
    auto got = store.ForRound("seg", round);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || !got->has_value()) return -1;
    return (**got).at("bn.running_mean")[0].item<float>();
  }
  static TensorMap Value(float v) { return {{"bn.running_mean", at::full({2}, v)}}; }

  fs::path dir_;
};

TEST_F(SiteTensorStoreTest, ARoundTrainedAgainStartsFromTheStateBeforeIt) {
  SiteTensorStore store(dir_);
  EXPECT_EQ(StartOf(store, 1), -1) << "nothing saved yet";
  ASSERT_TRUE(store.Save("seg", 1, Value(1)).ok());
  EXPECT_EQ(StartOf(store, 2), 1);
  EXPECT_EQ(StartOf(store, 1), -1) << "round 1 again starts fresh, not from its own result";
  ASSERT_TRUE(store.Save("seg", 2, Value(2)).ok());
  EXPECT_EQ(StartOf(store, 3), 2);
  EXPECT_EQ(StartOf(store, 2), 1);
  // Round 2 trained a second time (its upload was lost): round 1's result stays the start of
  // round 2, and the second try replaces the first as the latest.
  ASSERT_TRUE(store.Save("seg", 2, Value(22)).ok());
  EXPECT_EQ(StartOf(store, 2), 1);
  EXPECT_EQ(StartOf(store, 3), 22);
  auto latest = common::tensors::LoadSafetensors(store.LatestPath("seg"));
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->at("bn.running_mean")[0].item<float>(), 22);
  // Phases are separate.
  auto other = store.ForRound("shape", 3);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
}

TEST_F(SiteTensorStoreTest, AFileWithoutARoundIsFromBeforeEveryRoundAndABadOneIsNamed) {
  SiteTensorStore store(dir_);
  fs::create_directories(dir_);
  ASSERT_TRUE(common::tensors::WriteSafetensors(store.LatestPath("seg"), Value(7)).ok());
  EXPECT_EQ(StartOf(store, 1), 7);
  ASSERT_TRUE(common::tensors::WriteSafetensors(store.LatestPath("seg"), Value(7),
                                                {{"fedjoint.round", "x"}})
                  .ok());
  auto got = store.ForRound("seg", 1);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(std::string(got.status().message()).find("seg.safetensors: metadata fedjoint.round"),
            std::string::npos)
      << got.status();
}

}  // namespace
}  // namespace fedjoint::site_agent
