// `check-config` of both executables, run as a user would: exit code, stdout and stderr.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/config/config.h"

namespace fedjoint::common::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const fs::path kCoordinator =
    fs::path(FEDJOINT_BINARY_DIR) / "coordinator" / "fedjoint-coordinator";
const fs::path kSite = fs::path(FEDJOINT_BINARY_DIR) / "site_agent" / "fedjoint-site";

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class CheckConfigCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fedjoint_check_config_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result Run(const fs::path& binary, const std::vector<std::string>& args) {
    std::string command = ShellQuote(binary.string());
    // Appended piecewise: GCC 12 warns (-Wrestrict, a false positive) on `" " + std::string`.
    for (const std::string& arg : args) {
      command += ' ';
      command += ShellQuote(arg);
    }
    command += " >";
    command += ShellQuote((dir_ / "stdout").string());
    command += " 2>";
    command += ShellQuote((dir_ / "stderr").string());
    int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = ReadAll(dir_ / "stdout");
    result.err = ReadAll(dir_ / "stderr");
    return result;
  }

  fs::path Write(const std::string& name, const std::string& text) {
    fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }

  fs::path dir_;
};

TEST_F(CheckConfigCommandTest, ValidExamplesPass) {
  fs::path coordinator = fs::path(FEDJOINT_SOURCE_DIR) / "configs" / "coordinator.example.yaml";
  Result result = Run(kCoordinator, {"check-config", coordinator.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, coordinator.string() + ": OK\n");
  EXPECT_EQ(result.err, "");

  fs::path site = fs::path(FEDJOINT_SOURCE_DIR) / "configs" / "site.example.yaml";
  result = Run(kSite, {"check-config", site.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, site.string() + ": OK\n");
}

TEST_F(CheckConfigCommandTest, PrintShowsTheEffectiveConfigWithDefaults) {
  fs::path file = Write("site.yaml", "name: site-b\nstate_dir: state\nmanifest: m.yaml\n");
  Result result = Run(kSite, {"check-config", file.string(), "--print"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, StartsWith(file.string() + ": OK\n"));
  EXPECT_THAT(result.out, HasSubstr("state_dir: \"" + (dir_ / "state").string() + "\"\n"));
  EXPECT_THAT(result.out, HasSubstr("loader_threads: 2\n"));
  EXPECT_THAT(result.out, HasSubstr("  optimizer:\n    name: \"adamw\"\n"));
  // The printed configuration is itself a valid config that means the same thing.
  std::string printed = result.out.substr(result.out.find('\n') + 1);
  absl::StatusOr<v1::SiteConfig> reparsed = ParseConfig<v1::SiteConfig>(printed, "printed");
  ASSERT_TRUE(reparsed.ok()) << reparsed.status() << "\n" << printed;
  absl::StatusOr<v1::SiteConfig> original = LoadConfig<v1::SiteConfig>(file);
  ASSERT_TRUE(original.ok());
  EXPECT_EQ(reparsed->SerializeAsString(), original->SerializeAsString());
}

TEST_F(CheckConfigCommandTest, InvalidConfigListsEveryProblemAndFails) {
  fs::path file = Write("bad.yaml",
                        "name: site-a\n"
                        "state_dir: state\n"
                        "threads: many\n"
                        "trainig: {}\n");
  Result result = Run(kSite, {"check-config", file.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
  std::string f = file.string();
  EXPECT_EQ(result.err, "fedjoint-site: error: " + f + ": 3 problems\n" +   //
                            f + ":1:1: manifest: missing required key\n" +  //
                            f + ":3:10: threads: expected an integer, got 'many'\n" + f +
                            ":4:1: trainig: unknown key (did you mean 'training'?)\n");

  fs::path coordinator = Write("coordinator.yaml", "listen: \"0.0.0.0:1\"\njob: {min_sites: 0}\n");
  result = Run(kCoordinator, {"check-config", coordinator.string()});
  EXPECT_EQ(result.exit_code, 1);
  std::string c = coordinator.string();
  EXPECT_EQ(result.err, "fedjoint-coordinator: error: " + c + ": 5 problems\n" +  //
                            c + ":1:1: state_dir: missing required key\n" +       //
                            c + ":1:1: tls: missing required key\n" +             //
                            c + ":1:1: signing_key: missing required key\n" +     //
                            c + ":2:6: job.phases: missing required key\n" +      //
                            c + ":2:18: job.min_sites: must be >= 1, got 0\n");
}

TEST_F(CheckConfigCommandTest, SyntaxErrorAndMissingFile) {
  fs::path file = Write("broken.yaml", "name: site-a\nstate_dir: [a\n");
  Result result = Run(kSite, {"check-config", file.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr(file.string() + ": 1 problem\n" + file.string() +
                                    ":3:1: YAML syntax error: "));

  fs::path absent = dir_ / "absent.yaml";
  result = Run(kCoordinator, {"check-config", absent.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, "fedjoint-coordinator: error: " + absent.string() +
                            ": cannot open: No such file or directory\n");
}

TEST_F(CheckConfigCommandTest, FileArgumentIsRequired) {
  Result result = Run(kSite, {"check-config"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("file is required"));
}

}  // namespace
}  // namespace fedjoint::common::config
