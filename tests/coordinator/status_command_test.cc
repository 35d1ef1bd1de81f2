// `fedjoint-coordinator status`, run as an operator would, beside a state folder that a live
// coordinator owns: it must only read.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace fedjoint::coordinator {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Every entry under `dir` with its bytes (folders map to "<dir>").
std::map<std::string, std::string> Snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    files[fs::relative(entry.path(), dir).string()] =
        entry.is_directory() ? std::string("<dir>") : ReadAll(entry.path());
  }
  return files;
}

TEST(StatusCommandTest, LeavesTheStateFolderByteIdentical) {
  const fs::path dir =
      fs::temp_directory_path() / ("fedjoint_status_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const fs::path state = dir / "state";
  // A folder as a crash leaves it, which CheckpointStore::Open would repair: round 2 committed in
  // state.json but not yet in rounds.jsonl, and a torn line at the end of the log. No rounds/
  // folder for round 1 (Open would create rounds/ if it were missing too).
  fs::create_directories(state / "rounds/0002");
  std::ofstream(state / "rounds/0002/global.safetensors") << "model bytes";
  nlohmann::json record = {{"round", 2}, {"phase", "segmentation"}, {"sites", {"site-a"}}};
  nlohmann::json json = {{"format", "fedjoint-coordinator-state"},
                         {"version", 1},
                         {"job_id", "job-1"},
                         {"finished_rounds", 2},
                         {"global_digest", "abcdef"},
                         {"sites", nlohmann::json::object()},
                         {"last_round_record", record}};
  std::ofstream(state / "state.json") << json.dump(2);
  std::ofstream(state / "rounds.jsonl")
      << R"({"round": 1, "phase": "segmentation", "sites": ["site-a"]})"
      << "\n{\"round\": 2, \"si";
  const auto before = Snapshot(state);

  const fs::path binary = fs::path(FEDJOINT_BINARY_DIR) / "coordinator" / "fedjoint-coordinator";
  const std::string command = "'" + binary.string() + "' status --state '" + state.string() +
                              "' >'" + (dir / "out").string() + "' 2>&1";
  const int rc = std::system(command.c_str());
  const std::string out = ReadAll(dir / "out");
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
  EXPECT_THAT(out, HasSubstr("job job-1: 2 round(s) finished"));
  // Round 2 is shown from state.json although the log does not have it yet.
  EXPECT_THAT(out, HasSubstr("     2 segmentation"));
  EXPECT_EQ(Snapshot(state), before) << "status wrote to the state folder";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fedjoint::coordinator
