#include "common/data/volume_io.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/data/test_volumes.h"

namespace fedjoint::common::data {
namespace {

namespace fs = std::filesystem;
using test_util::TempDirTest;
using test_util::TestGeometry;
using test_util::TestImage;
using test_util::TestLabels;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const fs::path kDicomFolder = fs::path(FEDJOINT_SOURCE_DIR) / "tests/fixtures/dicom-ct-3slice";
constexpr char kDicomSeriesUid[] = "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1";

void ExpectGeometryNear(const Geometry& actual, const Geometry& expected, double tolerance) {
  EXPECT_EQ(actual.size, expected.size);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(actual.spacing[c], expected.spacing[c], tolerance) << "spacing " << c;
    EXPECT_NEAR(actual.origin[c], expected.origin[c], tolerance) << "origin " << c;
  }
  for (int e = 0; e < 9; ++e) {
    EXPECT_NEAR(actual.direction[e], expected.direction[e], tolerance) << "direction " << e;
  }
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::string FirstBytes(const fs::path& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(n, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// ---------------------------------------------------------------------------------------------
// Round trips through every writable format.

class RoundTripTest : public TempDirTest, public ::testing::WithParamInterface<std::string> {
 protected:
  fs::path PathFor(const std::string& stem) const { return dir_ / (stem + GetParam()); }

  // NIfTI keeps its affine in float32; NRRD and MetaImage print doubles.
  double Tolerance() const { return GetParam().starts_with(".nii") ? 1e-4 : 1e-9; }

  void ExpectOnlyFile(const fs::path& path) const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    EXPECT_THAT(names, ElementsAre(path.filename().string())) << "no temporary may be left behind";
  }
};

TEST_P(RoundTripTest, ImageKeepsVoxelsAndGeometry) {
  const Volume original = TestImage();
  const fs::path path = PathFor("scan");
  ASSERT_TRUE(WriteVolume(original, path).ok());
  ExpectOnlyFile(path);

  absl::StatusOr<Volume> read = ReadVolume(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->voxels.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(read->voxels, original.voxels));
  ExpectGeometryNear(read->geometry, original.geometry, Tolerance());
}

TEST_P(RoundTripTest, ObliqueGeometryIsKept) {
  Volume original = TestImage();
  // A 10 degree rotation about z composed with the test direction.
  const double c = std::cos(10.0 * std::numbers::pi / 180.0);
  const double s = std::sin(10.0 * std::numbers::pi / 180.0);
  const std::array<double, 9> rot{c, -s, 0, s, c, 0, 0, 0, 1};
  const std::array<double, 9> base = original.geometry.direction;
  for (int r = 0; r < 3; ++r) {
    for (int col = 0; col < 3; ++col) {
      double sum = 0;
      for (int m = 0; m < 3; ++m) sum += rot[r * 3 + m] * base[m * 3 + col];
      original.geometry.direction[r * 3 + col] = sum;
    }
  }
  const fs::path path = PathFor("oblique");
  ASSERT_TRUE(WriteVolume(original, path).ok());
  absl::StatusOr<Volume> read = ReadVolume(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectGeometryNear(read->geometry, original.geometry, Tolerance());
}

TEST_P(RoundTripTest, Uint8LabelsStayUint8) {
  const Volume original = TestLabels(at::kByte, /*modulus=*/4);
  const fs::path path = PathFor("labels");
  ASSERT_TRUE(WriteVolume(original, path).ok());
  ExpectOnlyFile(path);

  absl::StatusOr<Volume> read = ReadLabelVolume(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->voxels.scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(read->voxels, original.voxels));
  ExpectGeometryNear(read->geometry, original.geometry, Tolerance());
}

TEST_P(RoundTripTest, LargeAndNegativeLabelsBecomeInt16) {
  // Values -5 .. 995 in steps: beyond uint8 both ways.
  Volume original = TestLabels(at::kShort, /*modulus=*/1001, /*offset=*/-5);
  original.voxels.mul_(9).remainder_(1001).sub_(5);
  const fs::path path = PathFor("big_labels");
  ASSERT_TRUE(WriteVolume(original, path).ok());

  absl::StatusOr<Volume> read = ReadLabelVolume(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->voxels.scalar_type(), at::kShort);
  EXPECT_TRUE(at::equal(read->voxels, original.voxels));
}

TEST_P(RoundTripTest, OverwritesAnExistingFile) {
  const fs::path path = PathFor("scan");
  ASSERT_TRUE(WriteVolume(TestImage(), path).ok());
  Volume second = TestImage();
  second.voxels.mul_(-1);
  ASSERT_TRUE(WriteVolume(second, path).ok());
  ExpectOnlyFile(path);
  absl::StatusOr<Volume> read = ReadVolume(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(at::equal(read->voxels, second.voxels));
}

TEST_P(RoundTripTest, SingleSliceVolumeStaysThreeDimensional) {
  Volume original = TestImage();
  original.voxels = original.voxels.narrow(0, 0, 1).contiguous();
  original.geometry.size[2] = 1;
  const fs::path path = PathFor("one_slice");
  ASSERT_TRUE(WriteVolume(original, path).ok());
  absl::StatusOr<Volume> read = ReadVolume(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(at::equal(read->voxels, original.voxels));
  ExpectGeometryNear(read->geometry, original.geometry, Tolerance());
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundTripTest,
                         ::testing::Values(".nii", ".nii.gz", ".nrrd", ".mha"),
                         [](const auto& info) {
                           std::string name = info.param.substr(1);
                           for (char& c : name) {
                             if (c == '.') c = '_';
                           }
                           return name;
                         });

using VolumeIoTest = TempDirTest;

TEST_F(VolumeIoTest, ExtensionDecidesTheEncoding) {
  const Volume image = TestImage();
  ASSERT_TRUE(WriteVolume(image, dir_ / "a.nii.gz").ok());
  ASSERT_TRUE(WriteVolume(image, dir_ / "b.nii").ok());
  ASSERT_TRUE(WriteVolume(image, dir_ / "c.nrrd").ok());
  ASSERT_TRUE(WriteVolume(image, dir_ / "d.mha").ok());
  ASSERT_TRUE(WriteVolume(image, dir_ / "E.NII.GZ").ok());
  EXPECT_EQ(FirstBytes(dir_ / "a.nii.gz", 2), "\x1f\x8b");  // gzip
  EXPECT_EQ(FirstBytes(dir_ / "E.NII.GZ", 2), "\x1f\x8b");
  EXPECT_EQ(FirstBytes(dir_ / "b.nii", 348).substr(344, 3), "n+1");  // NIfTI-1 single file
  EXPECT_EQ(FirstBytes(dir_ / "c.nrrd", 4), "NRRD");
  EXPECT_EQ(FirstBytes(dir_ / "d.mha", 10), "ObjectType");
}

TEST_F(VolumeIoTest, CompressionOptionShrinksLabels) {
  const Volume labels = TestLabels(at::kByte, 1);  // all zero: compresses to almost nothing
  ASSERT_TRUE(WriteVolume(labels, dir_ / "raw.mha", WriteOptions{.compress = false}).ok());
  ASSERT_TRUE(WriteVolume(labels, dir_ / "zip.mha", WriteOptions{.compress = true}).ok());
  EXPECT_LT(fs::file_size(dir_ / "zip.mha"), fs::file_size(dir_ / "raw.mha"));
  absl::StatusOr<Volume> read = ReadLabelVolume(dir_ / "zip.mha");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(at::equal(read->voxels, labels.voxels));
}

TEST_F(VolumeIoTest, ReadsDetachedHeaderNrrd) {
  // A hand-written .nhdr + raw file: checks the reader's axis order and geometry parsing
  // independently of our own writer.
  WriteText(dir_ / "tiny.raw", std::string("\x01\x02\x03\x04\x05\x06", 6));
  WriteText(dir_ / "tiny.nhdr",
            "NRRD0004\n"
            "type: uint8\n"
            "dimension: 3\n"
            "space: left-posterior-superior\n"
            "sizes: 3 2 1\n"
            "space directions: (0,2,0) (-0.5,0,0) (0,0,4)\n"
            "space origin: (1,2,3)\n"
            "kinds: domain domain domain\n"
            "encoding: raw\n"
            "data file: tiny.raw\n");
  absl::StatusOr<Volume> read = ReadLabelVolume(dir_ / "tiny.nhdr");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->voxels.sizes().vec(), ElementsAre(1, 2, 3));
  EXPECT_EQ(read->voxels[0][1][2].item<int>(), 6);  // i = 2, j = 1: the last byte
  EXPECT_EQ(read->voxels[0][0][1].item<int>(), 2);
  Geometry expected;
  expected.size = {3, 2, 1};
  expected.spacing = {2, 0.5, 4};
  expected.origin = {1, 2, 3};
  expected.direction = {0, -1, 0, 1, 0, 0, 0, 0, 1};
  ExpectGeometryNear(read->geometry, expected, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// The real DICOM series.

TEST(DicomTest, ReadsTheSeriesWithTheLabelsGeometry) {
  absl::StatusOr<Volume> ct = ReadVolume(kDicomFolder);
  ASSERT_TRUE(ct.ok()) << ct.status();
  EXPECT_EQ(ct->voxels.scalar_type(), at::kFloat);
  EXPECT_THAT(ct->voxels.sizes().vec(), ElementsAre(3, 512, 512));
  EXPECT_EQ(ct->geometry.size, (std::array<int64_t, 3>{512, 512, 3}));
  EXPECT_NEAR(ct->geometry.spacing[0], 0.810547, 1e-5);
  EXPECT_NEAR(ct->geometry.spacing[1], 0.810547, 1e-5);
  EXPECT_NEAR(ct->geometry.spacing[2], 1.0, 1e-5);

  absl::StatusOr<Volume> label = ReadLabelVolume(kDicomFolder / "spine_seg.nrrd");
  ASSERT_TRUE(label.ok()) << label.status();
  ExpectGeometryNear(ct->geometry, label->geometry, 1e-4);

  // Hounsfield units (rescale applied): air near -1000, bone well above 0.
  EXPECT_LT(ct->voxels.min().item<float>(), -900.0f);
  EXPECT_GT(ct->voxels.max().item<float>(), 500.0f);
}

TEST(DicomTest, LabelHasValuesZeroAndTwo) {
  absl::StatusOr<Volume> label = ReadLabelVolume(kDicomFolder / "spine_seg.nrrd");
  ASSERT_TRUE(label.ok()) << label.status();
  EXPECT_EQ(label->voxels.scalar_type(), at::kByte);  // stored as short, fits a byte
  at::Tensor values =
      std::get<0>(at::_unique(label->voxels.reshape(-1), /*sorted=*/true)).to(at::kLong);
  EXPECT_THAT(
      std::vector<int64_t>(values.data_ptr<int64_t>(), values.data_ptr<int64_t>() + values.numel()),
      ElementsAre(0, 2));
  EXPECT_GT(label->voxels.eq(2).sum().item<int64_t>(), 100);
}

TEST(DicomTest, ListsAndSelectsSeriesByUid) {
  absl::StatusOr<std::vector<std::string>> uids = ListDicomSeries(kDicomFolder);
  ASSERT_TRUE(uids.ok()) << uids.status();
  EXPECT_THAT(*uids, ElementsAre(kDicomSeriesUid));

  absl::StatusOr<Volume> chosen =
      ReadVolume(kDicomFolder, ReadOptions{.series_uid = kDicomSeriesUid});
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(chosen->geometry.size[2], 3);
}

TEST_F(VolumeIoTest, SingleDicomFileIsAOneSliceVolume) {
  fs::copy_file(kDicomFolder / "ct-3slice_02.dcm", dir_ / "only.dcm");
  absl::StatusOr<Volume> ct = ReadVolume(dir_);
  ASSERT_TRUE(ct.ok()) << ct.status();
  EXPECT_EQ(ct->geometry.size, (std::array<int64_t, 3>{512, 512, 1}));
}

TEST(DicomTest, WrongSeriesUidListsTheRealOne) {
  absl::StatusOr<Volume> read = ReadVolume(kDicomFolder, ReadOptions{.series_uid = "1.2.3.4"});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(read.status()),
              AllOf(HasSubstr("dicom-ct-3slice"), HasSubstr("no DICOM series with UID 1.2.3.4"),
                    HasSubstr(std::string(kDicomSeriesUid) + " (3 slices)")));
}

TEST_F(VolumeIoTest, FolderWithoutDicomIsNotFound) {
  WriteText(dir_ / "notes.txt", "not a DICOM file");
  absl::StatusOr<Volume> read = ReadVolume(dir_);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(read.status()), HasSubstr("no DICOM series in this folder"));
  absl::StatusOr<std::vector<std::string>> uids = ListDicomSeries(dir_);
  ASSERT_TRUE(uids.ok()) << uids.status();
  EXPECT_TRUE(uids->empty());
}

// ---------------------------------------------------------------------------------------------
// Errors name the file and say what is wrong.

TEST_F(VolumeIoTest, MissingFileIsNotFound) {
  absl::StatusOr<Volume> read = ReadVolume(dir_ / "missing_scan.nii.gz");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(read.status()), HasSubstr("missing_scan.nii.gz: no such file or folder"));
}

TEST_F(VolumeIoTest, RejectsTwoDimensionalImage) {
  const fs::path path = dir_ / "flat.nrrd";
  WriteText(path,
            "NRRD0004\n"
            "type: float\n"
            "dimension: 2\n"
            "sizes: 4 3\n"
            "encoding: ascii\n"
            "\n"
            "1 2 3 4 5 6 7 8 9 10 11 12\n");
  absl::StatusOr<Volume> read = ReadVolume(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(read.status()), path.string() + ": image is 2D (4x3); a 3D volume is required");
}

TEST_F(VolumeIoTest, RejectsFourDimensionalImage) {
  const fs::path path = dir_ / "series.nrrd";
  WriteText(path,
            "NRRD0004\n"
            "type: uint8\n"
            "dimension: 4\n"
            "sizes: 2 2 2 2\n"
            "encoding: ascii\n"
            "\n"
            "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
  absl::StatusOr<Volume> read = ReadLabelVolume(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(read.status()), HasSubstr("series.nrrd: image is 4D (2x2x2x2)"));
}

TEST_F(VolumeIoTest, GarbageFilesAreDataLoss) {
  std::string garbage(500, 'Z');
  garbage.append("definitely not an image");
  for (const char* name : {"garbage.nii.gz", "garbage.nii", "garbage.nrrd", "garbage.mha"}) {
    WriteText(dir_ / name, garbage);
    absl::StatusOr<Volume> read = ReadVolume(dir_ / name);
    ASSERT_FALSE(read.ok()) << name;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << name;
    EXPECT_THAT(Message(read.status()), HasSubstr(name));
  }
}

// ITK's NIfTI and MetaImage readers accept short files silently; the reader must not.
TEST_F(VolumeIoTest, TruncatedFilesAreDataLoss) {
  for (const char* ext : {".nii", ".nii.gz", ".nrrd", ".mha"}) {
    for (bool compress : {false, true}) {
      const fs::path full = dir_ / (std::string("full") + ext);
      ASSERT_TRUE(WriteVolume(TestImage(), full, {.compress = compress}).ok());
      const fs::path cut = dir_ / (std::string("cut") + ext);
      WriteText(cut, FirstBytes(full, fs::file_size(full) - 40));
      absl::StatusOr<Volume> read = ReadVolume(cut);
      ASSERT_FALSE(read.ok()) << ext << " compress=" << compress;
      EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << ext;
      EXPECT_THAT(Message(read.status()), HasSubstr(cut.string())) << ext;
    }
  }
}

TEST_F(VolumeIoTest, TruncationMessageSaysWhatIsMissing) {
  const fs::path full = dir_ / "scan.nii";
  ASSERT_TRUE(WriteVolume(TestImage(), full).ok());
  const uintmax_t size = fs::file_size(full);  // 352-byte header + 105 float32 voxels
  ASSERT_EQ(size, 352u + 105 * 4);
  WriteText(dir_ / "cut.nii", FirstBytes(full, size - 4));
  absl::StatusOr<Volume> read = ReadVolume(dir_ / "cut.nii");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(Message(read.status()),
            (dir_ / "cut.nii").string() +
                ": file is truncated (768 bytes, the header needs 772); was it copied completely?");
}

TEST_F(VolumeIoTest, UnknownExtensions) {
  WriteText(dir_ / "photo.png", "png?");
  absl::StatusOr<Volume> read = ReadVolume(dir_ / "photo.png");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(read.status()), HasSubstr("photo.png: unsupported file extension"));

  absl::Status write = WriteVolume(TestImage(), dir_ / "out.png");
  EXPECT_EQ(write.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(write), HasSubstr("out.png: unsupported file extension for writing"));

  absl::Status detached = WriteVolume(TestImage(), dir_ / "out.nhdr");
  EXPECT_EQ(detached.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(detached), HasSubstr("cannot be written atomically"));
  EXPECT_FALSE(fs::exists(dir_ / "out.png"));
}

TEST_F(VolumeIoTest, WriteRefusesBadVolumesAndMissingFolders) {
  Volume doubles = TestImage();
  doubles.voxels = doubles.voxels.to(at::kDouble);
  absl::Status status = WriteVolume(doubles, dir_ / "d.nrrd");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("voxel type float64 is not supported"));

  Volume wrong_shape = TestImage();
  wrong_shape.voxels = wrong_shape.voxels.reshape({5, 3, 7});
  status = WriteVolume(wrong_shape, dir_ / "s.nrrd");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("expected [3, 5, 7]"));

  status = WriteVolume(TestImage(), dir_ / "no_such_folder" / "x.nii.gz");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr("no_such_folder"));
}

TEST_F(VolumeIoTest, LabelReaderRefusesNonIntegerValues) {
  const fs::path path = dir_ / "image.nrrd";
  ASSERT_TRUE(WriteVolume(TestImage(), path).ok());  // values end in .25
  absl::StatusOr<Volume> read = ReadLabelVolume(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(read.status()), HasSubstr("image.nrrd: label volume has non-integer values"));
}

TEST_F(VolumeIoTest, SeriesUidOnAFileIsAnError) {
  const fs::path path = dir_ / "scan.mha";
  ASSERT_TRUE(WriteVolume(TestImage(), path).ok());
  absl::StatusOr<Volume> read = ReadVolume(path, ReadOptions{.series_uid = "1.2.3"});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedjoint::common::data
