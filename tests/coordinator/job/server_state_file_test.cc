#include "coordinator/job/server_state_file.h"

#include <unistd.h>

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ServerStateFileTest, RoundTripsAndRefusesAnotherModelsState) {
  const fs::path path =
      fs::temp_directory_path() / ("fedjoint_server_state_" + std::to_string(::getpid()));
  common::aggregation::ServerState state{{{1, 2}, {3}}, {{4, 5}, {6}}};
  const std::vector<std::string> names = {"encoder.w", "heads.knee.w"};
  ASSERT_TRUE(WriteServerState(path, names, state).ok());

  const std::vector<size_t> sizes = {2, 1};
  auto adam = ReadServerState(path, names, sizes, /*with_second=*/true);
  ASSERT_TRUE(adam.ok()) << adam.status();
  EXPECT_THAT(adam->first[0], ElementsAre(1.0f, 2.0f));
  EXPECT_THAT(adam->second[1], ElementsAre(6.0f));
  auto momentum = ReadServerState(path, names, sizes, /*with_second=*/false);
  ASSERT_TRUE(momentum.ok());
  EXPECT_TRUE(momentum->second.empty());

  const std::vector<size_t> other_sizes = {3, 1};
  EXPECT_THAT(ReadServerState(path, names, other_sizes, false).status().message(),
              HasSubstr("'encoder.w.m' has 2 values, the model 3"));
  const std::vector<std::string> other_names = {"decoder.w"};
  const std::vector<size_t> one = {2};
  auto missing = ReadServerState(path, other_names, one, false);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr(path.string()));
  fs::remove(path);
  EXPECT_FALSE(ReadServerState(path, names, sizes, false).ok());
}

}  // namespace
}  // namespace fedjoint::coordinator
