// Python cross-check in both directions: Debian's Python reads a fedjoint file with json + struct
// (and numpy / torch / safetensors where installed) and recomputes the digest; then C++ reads,
// with full validation, a file that Python wrote with json + struct and its own digest.
#include <cstdio>
#include <iostream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/tensors/digest.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"
#include "tests/common/tensors/test_util.h"

namespace fedjoint::common::tensors {
namespace {

namespace fs = std::filesystem;

using testing::FromValues;
using ::testing::HasSubstr;
using testing::OwnedTensor;

// Debian's interpreter (with python3-numpy, maybe python3-torch); `python3` on PATH may be a
// pyenv without them.
constexpr const char* kPython = "/usr/bin/python3";

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult RunCommand(const std::string& command) {
  RunResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Single-quoted for the shell (the temp paths contain no quotes).
std::string Quote(const fs::path& path) {
  std::string quoted(1, '\'');
  quoted.append(path.string()).push_back('\'');
  return quoted;
}

class CrosscheckTest : public testing::TempDirTest {};

TEST_F(CrosscheckTest, PythonReadsOurFilesAndWeReadPythons) {
  if (!fs::exists(kPython)) {
    GTEST_SKIP() << kPython << " not found: the Python cross-check needs it";
  }

  std::vector<OwnedTensor> tensors = testing::EveryDTypeTensors();
  tensors.push_back(FromValues("unicode.\xc3\xa9l\xc3\xa8ve", DType::kI16, {2}, {-300, 300}));
  Metadata metadata{{"round", "12"}, {"joint", "knee"}};
  fs::path ours = dir_ / "ours.safetensors";
  ASSERT_TRUE(WriteSafetensors(ours, testing::Refs(tensors), metadata).ok());

  nlohmann::json expected;
  expected["digest"] = *ComputeDigest(testing::Refs(tensors));
  expected["metadata"] = metadata;
  expected["metadata"][std::string(kDigestMetadataKey)] = expected["digest"];
  for (const OwnedTensor& t : tensors) {
    expected["tensors"][t.name] = {
        {"dtype", std::string(DTypeName(t.dtype))}, {"shape", t.shape}, {"values", t.values}};
  }
  fs::path expected_path = dir_ / "expected.json";
  testing::WriteBytes(expected_path, expected.dump());

  fs::path theirs = dir_ / "theirs.safetensors";
  fs::path script = fs::path(FEDJOINT_SOURCE_DIR) / "tests/common/tensors/crosscheck.py";
  RunResult run = RunCommand(std::string(kPython) + " " + Quote(script) + " " + Quote(ours) + " " +
                             Quote(expected_path) + " --write " + Quote(theirs));
  std::cout << run.output;  // what Python could check (numpy / torch / safetensors)
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output,
              HasSubstr("checked digest recomputed: " + expected["digest"].get<std::string>()));

  // The same table as crosscheck.py's PY_TENSORS.
  std::vector<OwnedTensor> python_tensors = {
      FromValues("py.bf16", DType::kBF16, {2}, {1.0, -2.0}),
      FromValues("py.bool", DType::kBool, {3}, {1, 0, 1}),
      FromValues("py.empty", DType::kF32, {0, 3}, {}),
      FromValues("py.f16", DType::kF16, {2, 2}, {0.5, -1.5, 2.0, 0.0}),
      FromValues("py.f32", DType::kF32, {2, 3}, {0.0, 0.25, 0.5, 0.75, 1.0, -1.25}),
      FromValues("py.f64.scalar", DType::kF64, {}, {3.5}),
      FromValues("py.i16", DType::kI16, {2}, {-300, 300}),
      FromValues("py.i32", DType::kI32, {1}, {-70000}),
      FromValues("py.i64", DType::kI64, {3}, {-1, 0, 1099511627776.0}),
      FromValues("py.i8", DType::kI8, {2}, {-128, 127}),
      FromValues("py.u8.\xc3\x9f", DType::kU8, {2}, {7, 255}),
  };
  auto file = SafetensorsFile::Open(theirs);  // requires and verifies the digest
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("writer"), "crosscheck.py");
  EXPECT_EQ(file->digest(), *ComputeDigest(testing::Refs(python_tensors)));
  ASSERT_EQ(file->tensors().size(), python_tensors.size());
  for (const OwnedTensor& t : python_tensors) {
    SCOPED_TRACE(t.name);
    const TensorInfo* info = file->Find(t.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, t.dtype);
    EXPECT_EQ(info->shape, t.shape);
    auto data = file->data(*info);
    EXPECT_TRUE(std::equal(data.begin(), data.end(), t.bytes.begin(), t.bytes.end()));
  }
}

}  // namespace
}  // namespace fedjoint::common::tensors
