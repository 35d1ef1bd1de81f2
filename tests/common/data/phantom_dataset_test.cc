#include "common/data/phantom_dataset.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/data/manifest.h"
#include "common/data/volume_io.h"

namespace fedjoint::common::data {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class PhantomDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fedjoint_phantom_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static PhantomOptions Small(const std::string& joint, const std::string& domain) {
    PhantomOptions o;
    o.joint = joint;
    o.domain = domain;
    o.seed = 5;
    o.in_plane_size = 48;
    o.in_plane_spacing_mm = 2.8;
    o.num_slices = 10;
    o.sub_slices = 2;
    return o;
  }

  static std::string Slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
};

TEST_F(PhantomDatasetTest, WritesImagesLabelsAndTheManifest) {
  PhantomOptions o = Small("knee", "t1");
  o.first_subject = 4;
  absl::StatusOr<PhantomDataset> ds = WritePhantomDataset(o, 2, dir_ / "site");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->manifest, dir_ / "site" / "manifest.yaml");
  ASSERT_EQ(ds->subjects.size(), 2u);
  EXPECT_GT(ds->bytes_written, 0u);
  EXPECT_EQ(Slurp(ds->manifest),
            "# fedjoint site manifest\n"
            "# synthetic phantoms: fedjoint-site phantoms --joint knee --domain t1 --seed 5\n"
            "subjects:\n"
            "  - id: knee-t1-004\n"
            "    image: subject-004_image.nii.gz\n"
            "    label: subject-004_label.nii.gz\n"
            "    joint: knee\n"
            "    domain: t1\n"
            "  - id: knee-t1-005\n"
            "    image: subject-005_image.nii.gz\n"
            "    label: subject-005_label.nii.gz\n"
            "    joint: knee\n"
            "    domain: t1\n"
            "labels:\n"
            "  knee: {1: femur, 2: tibia, 3: patella, 4: fibula}\n");
  EXPECT_THAT(Slurp(dir_ / "site" / "phantoms.csv"),
              HasSubstr("id,age_years,sex,scale,pose_deg,physis_closed,noise_sigma,labeled\n"
                        "knee-t1-004,"));

  // The site-manifest module reads it back.
  absl::StatusOr<Manifest> manifest = LoadManifest(ds->manifest);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_EQ(manifest->subjects.size(), 2u);
  EXPECT_EQ(manifest->subjects[1].id, "knee-t1-005");
  EXPECT_EQ(manifest->subjects[1].domain, "t1");
  EXPECT_THAT(manifest->Structures("knee"), ElementsAre("femur", "tibia", "patella", "fibula"));

  // The files hold exactly the generated volumes, with their geometry.
  const PhantomSubject expected = *GeneratePhantom(o, 5);
  absl::StatusOr<Volume> image = ReadVolume(dir_ / "site" / "subject-005_image.nii.gz");
  absl::StatusOr<Volume> label = ReadLabelVolume(dir_ / "site" / "subject-005_label.nii.gz");
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_TRUE(label.ok()) << label.status();
  EXPECT_TRUE(at::equal(image->voxels, expected.image.voxels));
  EXPECT_TRUE(at::equal(label->voxels, expected.label.voxels));
  EXPECT_EQ(label->voxels.scalar_type(), at::kByte);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(image->geometry.spacing[c], expected.image.geometry.spacing[c], 1e-5);
    EXPECT_NEAR(image->geometry.origin[c], expected.image.geometry.origin[c], 1e-4);
  }
  EXPECT_NEAR(image->geometry.spacing[2], 3.3, 1e-5);
  for (int e = 0; e < 9; ++e) {
    EXPECT_NEAR(image->geometry.direction[e], expected.image.geometry.direction[e], 1e-6);
  }
}

TEST_F(PhantomDatasetTest, SameSeedGivesByteIdenticalFiles) {
  const PhantomOptions o = Small("shoulder", "t2fs");
  ASSERT_TRUE(WritePhantomDataset(o, 1, dir_ / "a").ok());
  ASSERT_TRUE(WritePhantomDataset(o, 1, dir_ / "b").ok());
  for (const char* name :
       {"subject-000_image.nii.gz", "subject-000_label.nii.gz", "manifest.yaml", "phantoms.csv"}) {
    EXPECT_EQ(Slurp(dir_ / "a" / name), Slurp(dir_ / "b" / name)) << name;
  }
  PhantomOptions other = o;
  other.seed = 6;
  ASSERT_TRUE(WritePhantomDataset(other, 1, dir_ / "c").ok());
  EXPECT_NE(Slurp(dir_ / "a" / "subject-000_image.nii.gz"),
            Slurp(dir_ / "c" / "subject-000_image.nii.gz"));
}

TEST_F(PhantomDatasetTest, UnlabeledSubjectsHaveNoLabelFile) {
  PhantomOptions o = Small("ankle", "pd");
  o.labeled_subjects = 1;
  absl::StatusOr<PhantomDataset> ds = WritePhantomDataset(o, 3, dir_);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_TRUE(ds->subjects[0].label.has_value());
  EXPECT_FALSE(ds->subjects[1].label.has_value());
  EXPECT_TRUE(fs::exists(dir_ / "subject-000_label.nii.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "subject-001_label.nii.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "subject-002_label.nii.gz"));
  absl::StatusOr<Manifest> manifest = LoadManifest(ds->manifest);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_TRUE(manifest->subjects[0].label.has_value());
  EXPECT_FALSE(manifest->subjects[2].label.has_value());
  EXPECT_THAT(manifest->Structures("ankle"), ElementsAre("calcaneus", "talus", "tibia"));
}

TEST_F(PhantomDatasetTest, RejectsBadArguments) {
  absl::Status status = WritePhantomDataset(Small("knee", "t1"), 0, dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "the number of phantom subjects must be >= 1, got 0");
  status = WritePhantomDataset(Small("hip", "t1"), 1, dir_).status();
  EXPECT_EQ(status.message(),
            "unknown phantom joint 'hip': valid joints are ankle, knee, shoulder");
  std::ofstream(dir_ / "file") << "x";
  status = WritePhantomDataset(Small("knee", "t1"), 1, dir_ / "file").status();
  EXPECT_THAT(status.message(), HasSubstr("cannot create the output folder"));
  EXPECT_FALSE(fs::exists(dir_ / "manifest.yaml"));
}

// Independent check of the NIfTI header with nibabel, when Debian's Python has it.
TEST_F(PhantomDatasetTest, NibabelReadsSpacingAndLabels) {
  if (std::system("/usr/bin/python3 -c 'import nibabel' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "nibabel not available";
  }
  PhantomOptions o = Small("knee", "pd");
  o.slice_thickness_mm = 3.5;
  o.slice_gap_mm = 0.5;
  ASSERT_TRUE(WritePhantomDataset(o, 1, dir_).ok());
  const std::string cmd =
      "/usr/bin/python3 -c \"import nibabel as nib, numpy as np; "
      "i = nib.load('" +
      (dir_ / "subject-000_image.nii.gz").string() +
      "'); "
      "l = nib.load('" +
      (dir_ / "subject-000_label.nii.gz").string() +
      "'); "
      "z = i.header.get_zooms(); d = np.asarray(l.dataobj); "
      "print('%.3f %.3f %.3f %s %s %d' % (z[0], z[1], z[2], i.get_data_dtype(), d.dtype, "
      "len(np.unique(d))))\"";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[256] = {};
  std::string output;
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  ASSERT_EQ(::pclose(pipe), 0) << output;
  EXPECT_EQ(output, "2.800 2.800 4.000 float32 uint8 5\n");
}

}  // namespace
}  // namespace fedjoint::common::data
