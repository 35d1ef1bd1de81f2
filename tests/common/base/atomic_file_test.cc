#include "common/base/atomic_file.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::base {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fedjoint_atomic_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(AtomicFileTest, WritesContentsAndMode) {
  fs::path path = dir_ / "key.pem";
  ASSERT_TRUE(WriteFileAtomically(path, "secret", 0600).ok());
  auto read = ReadSmallFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "secret");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AtomicFileTest, UncommittedWriterLeavesOldFileAndNoTemporary) {
  fs::path path = dir_ / "state.json";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  {
    auto writer = AtomicFileWriter::Open(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->Write(std::string_view("new but never committed")).ok());
  }
  EXPECT_EQ(*ReadSmallFile(path), "old");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1) << "the temporary file must be removed";
}

TEST_F(AtomicFileTest, ReplacesExistingFile) {
  fs::path path = dir_ / "model.bin";
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(*ReadSmallFile(path), "second");
}

TEST_F(AtomicFileTest, ErrorsNameThePath) {
  auto missing = ReadSmallFile(dir_ / "nope.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nope.yaml"));

  auto bad_dir = WriteFileAtomically(dir_ / "no_such_dir" / "x", "data");
  ASSERT_FALSE(bad_dir.ok());
  EXPECT_THAT(std::string(bad_dir.message()), HasSubstr("no_such_dir"));
}

TEST_F(AtomicFileTest, CommitTemporaryFileRenamesIntoPlace) {
  fs::path path = dir_ / "scan.nii.gz";
  fs::path temp = dir_ / "scan.tmp1.nii.gz";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  { std::ofstream(temp) << "new"; }
  ASSERT_TRUE(CommitTemporaryFile(temp, path).ok());
  EXPECT_EQ(*ReadSmallFile(path), "new");
  EXPECT_FALSE(fs::exists(temp));

  { std::ofstream(temp) << "orphan"; }
  absl::Status bad = CommitTemporaryFile(temp, dir_ / "no_such_dir" / "scan.nii.gz");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()), HasSubstr("no_such_dir"));
  EXPECT_FALSE(fs::exists(temp)) << "a failed commit must not leave the temporary behind";
}

TEST_F(AtomicFileTest, RefusesFilesOverTheLimit) {
  fs::path path = dir_ / "big";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(1000, 'x')).ok());
  auto read = ReadSmallFile(path, 999);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(read.status().message()), HasSubstr("999"));
}

}  // namespace
}  // namespace fedjoint::common::base
