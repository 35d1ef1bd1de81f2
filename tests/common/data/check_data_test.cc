#include "common/data/check_data.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "common/data/volume_io.h"

namespace fedjoint::common::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Volume MakeVolume(at::ScalarType type, std::array<int64_t, 3> size, float fill = 0) {
  Volume v;
  v.geometry.size = size;
  v.geometry.spacing = {0.5, 0.5, 3.0};
  v.geometry.origin = {-10, 5, 20};
  v.voxels = at::full({size[2], size[1], size[0]}, fill, at::TensorOptions().dtype(type));
  return v;
}

class CheckDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fedjoint_checkdata_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A good image/label pair named `stem`; the label has femur (1) and tibia (2).
  void WritePair(const std::string& stem) {
    Volume image = MakeVolume(at::kFloat, {8, 6, 4}, 100.f);
    ASSERT_TRUE(WriteVolume(image, dir_ / (stem + "_image.nii.gz")).ok());
    Volume label = MakeVolume(at::kByte, {8, 6, 4});
    label.voxels.index_put_({0, 0, 0}, 1);
    label.voxels.index_put_({1, 2, 3}, 2);
    label.voxels.index_put_({1, 2, 4}, 2);
    ASSERT_TRUE(WriteVolume(label, dir_ / (stem + "_label.nii.gz")).ok());
  }

  Manifest Load(const std::string& yaml) {
    EXPECT_TRUE(base::WriteFileAtomically(dir_ / "manifest.yaml", yaml).ok());
    auto m = LoadManifest(dir_ / "manifest.yaml");
    EXPECT_TRUE(m.ok()) << m.status();
    return *m;
  }

  fs::path dir_;
};

constexpr char kLabels[] = "labels:\n  knee: {1: femur, 2: tibia}\n";

std::string Subject(const std::string& id, const std::string& image, const std::string& label) {
  std::string s = "  - id: " + id + "\n    image: " + image + "\n    joint: knee\n    domain: t1\n";
  if (!label.empty()) s += "    label: " + label + "\n";
  return s;
}

TEST_F(CheckDataTest, CleanManifestReportsSizesAndCounts) {
  WritePair("s0");
  WritePair("s1");
  Manifest m = Load("subjects:\n" + Subject("s0", "s0_image.nii.gz", "s0_label.nii.gz") +
                    Subject("s1", "s1_image.nii.gz", "s1_label.nii.gz") +
                    Subject("s2", "s1_label.nii.gz", "") + kLabels);
  DataReport report = CheckData(m);
  EXPECT_EQ(report.NumUnusable(), 0) << report.ToText(m);
  ASSERT_EQ(report.subjects.size(), 3u);
  EXPECT_EQ(report.subjects[0].geometry.size, (std::array<int64_t, 3>{8, 6, 4}));
  EXPECT_EQ(report.subjects[0].label_counts, (std::map<int, int64_t>{{1, 1}, {2, 2}}));
  std::string text = report.ToText(m);
  EXPECT_THAT(text, HasSubstr("s0       knee   t1      8x6x4  0.5x0.5x3     femur=1 tibia=2  ok"));
  EXPECT_THAT(text, HasSubstr("unlabeled"));
  EXPECT_THAT(text, HasSubstr("3 subject(s), 0 unusable"));
}

TEST_F(CheckDataTest, EveryDefectIsNamed) {
  WritePair("good");
  WritePair("dup");
  // Geometry mismatch: label with another spacing.
  Volume image = MakeVolume(at::kFloat, {8, 6, 4}, 1.f);
  ASSERT_TRUE(WriteVolume(image, dir_ / "geo_image.nii.gz").ok());
  Volume shifted = MakeVolume(at::kByte, {8, 6, 4}, 1);
  shifted.geometry.spacing = {0.5, 0.5, 2.0};
  ASSERT_TRUE(WriteVolume(shifted, dir_ / "geo_label.nii.gz").ok());
  // Label value 7 is not in the map.
  Volume odd = MakeVolume(at::kByte, {8, 6, 4}, 7);
  ASSERT_TRUE(WriteVolume(odd, dir_ / "odd_label.nii.gz").ok());
  // Empty label.
  Volume empty = MakeVolume(at::kByte, {8, 6, 4}, 0);
  ASSERT_TRUE(WriteVolume(empty, dir_ / "empty_label.nii.gz").ok());
  // Garbage file.
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "garbage.nii.gz", "not a nifti file").ok());
  // A 2D image, as a tiny NRRD.
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "flat.nrrd",
                                        std::string("NRRD0004\ntype: uint8\ndimension: 2\n"
                                                    "sizes: 2 2\nencoding: raw\n\n") +
                                            std::string(4, '\0'))
                  .ok());

  Manifest m = Load("subjects:\n" + Subject("good", "good_image.nii.gz", "good_label.nii.gz") +
                    Subject("missing", "nope_image.nii.gz", "") +
                    Subject("garbage", "garbage.nii.gz", "") + Subject("flat", "flat.nrrd", "") +
                    Subject("geo", "geo_image.nii.gz", "geo_label.nii.gz") +
                    Subject("odd", "good_image.nii.gz", "odd_label.nii.gz") +
                    Subject("empty", "dup_image.nii.gz", "empty_label.nii.gz") +
                    Subject("good", "dup_image.nii.gz", "dup_label.nii.gz") + kLabels);
  DataReport report = CheckData(m);
  std::string text = report.ToText(m);
  ASSERT_EQ(report.subjects.size(), 8u);
  EXPECT_EQ(report.NumUnusable(), 7) << text;
  EXPECT_THAT(report.subjects[0].problems, IsEmpty()) << text;
  auto problems = [&](int i) { return ::testing::PrintToString(report.subjects[i].problems); };
  EXPECT_THAT(problems(1), HasSubstr("nope_image.nii.gz")) << text;
  EXPECT_THAT(problems(2), HasSubstr("garbage.nii.gz")) << text;
  EXPECT_THAT(problems(3), HasSubstr("flat.nrrd")) << text;
  EXPECT_THAT(problems(3), HasSubstr("2D")) << text;
  EXPECT_THAT(problems(4), HasSubstr("geo_label.nii.gz: geometry differs from the image: "
                                     "spacing [0.5, 0.5, 3] vs [0.5, 0.5, 2]"))
      << text;
  EXPECT_THAT(problems(5), HasSubstr("odd_label.nii.gz: label value(s) 7 not in the label map "
                                     "of joint 'knee'"))
      << text;
  EXPECT_THAT(problems(5), HasSubstr("image listed by another subject too")) << text;
  EXPECT_THAT(problems(6), HasSubstr("empty_label.nii.gz: label volume is empty")) << text;
  EXPECT_THAT(problems(7), HasSubstr("duplicate subject id")) << text;
  EXPECT_THAT(text, HasSubstr("8 subject(s), 7 unusable"));
  EXPECT_THAT(text, HasSubstr("subject 'geo': "));
}

TEST_F(CheckDataTest, CommandExitsNonZeroAndPrintsTable) {
  WritePair("s0");
  Load("subjects:\n" + Subject("s0", "s0_image.nii.gz", "s0_label.nii.gz") +
       Subject("lost", "lost.nii.gz", "") + kLabels);
  const std::string site = std::string(FEDJOINT_BINARY_DIR) + "/site_agent/fedjoint-site";
  const std::string out = (dir_ / "out.txt").string();
  int rc = std::system(
      (site + " check-data " + (dir_ / "manifest.yaml").string() + " > " + out + " 2>&1").c_str());
  EXPECT_NE(rc, 0);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("2 subject(s), 1 unusable"));
  EXPECT_THAT(text, HasSubstr("subject 'lost': "));
  EXPECT_THAT(text, HasSubstr("1 of 2 subject(s) unusable"));

  Load("subjects:\n" + Subject("s0", "s0_image.nii.gz", "s0_label.nii.gz") + kLabels);
  rc = std::system(
      (site + " check-data " + (dir_ / "manifest.yaml").string() + " > " + out + " 2>&1").c_str());
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace fedjoint::common::data
