#include "common/data/slice_dataset.h"
#include "common/data/slice_options.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "common/data/volume_io.h"
#include "tests/common/data/test_volumes.h"

namespace fedjoint::common::data {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// A 10 x 8 x 4 (i, j, k) grid at 1 x 1 x 2 mm with identity direction.
Geometry SmallGeometry() {
  Geometry g;
  g.size = {10, 8, 4};
  g.spacing = {1.0, 1.0, 2.0};
  g.origin = {-5.0, 3.0, 10.0};
  return g;
}

// Distinct, non-symmetric intensities, so any flip or transpose changes the slices.
Volume SmallImage(float offset = 0.f) {
  Geometry g = SmallGeometry();
  at::Tensor v = at::arange(g.NumVoxels(), at::kFloat)
                     .mul_(0.37f)
                     .sin_()
                     .add_(offset)
                     .view({g.size[2], g.size[1], g.size[0]});
  return Volume{v.contiguous(), g};
}

// Labels: value 2 in a 4x4 block (i, j in [2, 6)) of slices k = 1 and 2, value 5 at one voxel
// (i, j, k) = (8, 1, 2); slices k = 0 and 3 are empty.
Volume SmallLabels() {
  Geometry g = SmallGeometry();
  at::Tensor v = at::zeros({g.size[2], g.size[1], g.size[0]}, at::kByte);
  v.slice(0, 1, 3).slice(1, 2, 6).slice(2, 2, 6).fill_(2);
  v[2][1][8] = 5;
  return Volume{v, g};
}

// The same physical volume stored with axes i and j reversed (direction diag(-1, -1, 1), a proper
// rotation): a reader that ignored the direction would see it mirrored.
Volume FlippedIJ(const Volume& volume) {
  Volume out = volume;
  const Geometry& g = volume.geometry;
  out.voxels = volume.voxels.flip({1, 2}).contiguous();
  out.geometry.direction = {-1, 0, 0, 0, -1, 0, 0, 0, 1};
  out.geometry.origin = {g.origin[0] + (g.size[0] - 1) * g.spacing[0],
                         g.origin[1] + (g.size[1] - 1) * g.spacing[1], g.origin[2]};
  return out;
}

class SliceDatasetTest : public test_util::TempDirTest {
 protected:
  void Write(const Volume& volume, const std::string& name) {
    absl::Status status = WriteVolume(volume, dir_ / name);
    ASSERT_TRUE(status.ok()) << status;
  }

  Manifest LoadYaml(const std::string& yaml) {
    EXPECT_TRUE(base::WriteFileAtomically(dir_ / "manifest.yaml", yaml).ok());
    absl::StatusOr<Manifest> manifest = LoadManifest(dir_ / "manifest.yaml");
    EXPECT_TRUE(manifest.ok()) << manifest.status();
    return manifest.ok() ? *manifest : Manifest{};
  }

  // knee subject "a" (labels {2, 5}), its flipped twin "a-flipped", ankle subject "b".
  Manifest StandardManifest() {
    Write(SmallImage(), "a_image.nii.gz");
    Write(SmallLabels(), "a_label.nii.gz");
    Write(FlippedIJ(SmallImage()), "af_image.nii.gz");
    Write(FlippedIJ(SmallLabels()), "af_label.nii.gz");
    Volume ankle_labels = SmallLabels();
    ankle_labels.voxels = ankle_labels.voxels.ne(0).to(at::kByte);  // ankle: value 1 only
    Write(SmallImage(3.f), "b_image.nii.gz");
    Write(ankle_labels, "b_label.nii.gz");
    return LoadYaml(R"(subjects:
  - {id: a, image: a_image.nii.gz, label: a_label.nii.gz, joint: knee, domain: t1}
  - {id: a-flipped, image: af_image.nii.gz, label: af_label.nii.gz, joint: knee, domain: t1}
  - {id: b, image: b_image.nii.gz, label: b_label.nii.gz, joint: ankle, domain: pd}
labels:
  knee: {5: tibia, 2: femur}
  ankle: {1: talus}
)");
  }

  static SliceDatasetOptions Options() {
    SliceDatasetOptions options;
    options.height = 12;  // slices are 8 x 10: 2 rows padded above, 1 column left
    options.width = 12;
    return options;
  }

  // The slices of subject `id`.
  static at::Tensor SubjectMask(const SliceDataset& dataset, const std::string& id) {
    auto it = std::find(dataset.subject_ids.begin(), dataset.subject_ids.end(), id);
    EXPECT_NE(it, dataset.subject_ids.end()) << id;
    return dataset.subjects.eq(it - dataset.subject_ids.begin());
  }
};

TEST_F(SliceDatasetTest, ShapesTypesAndPositions) {
  Manifest manifest = StandardManifest();
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee", "ankle"}, Options());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 12);  // 3 subjects x 4 axial slices
  EXPECT_THAT(dataset->images.sizes(), ElementsAre(12, 12, 12));
  EXPECT_EQ(dataset->images.scalar_type(), at::kFloat);
  EXPECT_THAT(dataset->labels.sizes(), ElementsAre(12, 12, 12));
  EXPECT_EQ(dataset->labels.scalar_type(), at::kByte);
  EXPECT_EQ(dataset->domains.scalar_type(), at::kLong);
  EXPECT_THAT(dataset->subject_ids, ElementsAre("a", "a-flipped", "b"));
  EXPECT_THAT(dataset->num_classes, ElementsAre(3, 2));
  EXPECT_TRUE(dataset->labeled.all().item<bool>());
  at::Tensor expected_positions = at::tensor({0.25f, 0.5f, 0.75f, 1.0f}).repeat({3});
  EXPECT_TRUE(at::equal(dataset->positions, expected_positions)) << dataset->positions;
  EXPECT_TRUE(at::equal(dataset->foreground,
                        at::tensor({0, 1, 1, 0}, at::kLong).to(at::kBool).repeat({3})));
}

TEST_F(SliceDatasetTest, RemapsLabelValuesToStructureIndicesInValueOrder) {
  Manifest manifest = StandardManifest();
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee", "ankle"}, Options());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  at::Tensor a = dataset->labels.index({SubjectMask(*dataset, "a")});  // [4, 12, 12]
  // Voxel (i, j, k) lands at slice k, row j + 2, column i + 1.
  EXPECT_EQ(a[2][1 + 2][8 + 1].item<int>(), 2);  // value 5 (tibia) -> 2
  EXPECT_EQ(a[1][3 + 2][3 + 1].item<int>(), 1);  // value 2 (femur) -> 1
  EXPECT_EQ(a[1].eq(1).sum().item<int64_t>(), 16);
  EXPECT_EQ(a.eq(0).sum().item<int64_t>(), 4 * 144 - 32 - 1);
  at::Tensor b = dataset->labels.index({SubjectMask(*dataset, "b")});
  EXPECT_EQ(b.max().item<int>(), 1);
}

TEST_F(SliceDatasetTest, DomainIdsFollowTheModelsJointOrder) {
  Manifest manifest = StandardManifest();
  absl::StatusOr<SliceDataset> first = BuildSliceDataset(manifest, {"knee", "ankle"}, Options());
  absl::StatusOr<SliceDataset> second =
      BuildSliceDataset(manifest, {"ankle", "hip", "knee"}, Options());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  at::Tensor b = SubjectMask(*first, "b");
  EXPECT_TRUE(first->domains.index({b}).eq(1).all().item<bool>());
  EXPECT_TRUE(first->domains.index({b.logical_not()}).eq(0).all().item<bool>());
  EXPECT_TRUE(second->domains.index({b}).eq(0).all().item<bool>());
  EXPECT_TRUE(second->domains.index({b.logical_not()}).eq(2).all().item<bool>());
  EXPECT_THAT(second->joints, ElementsAre("ankle", "hip", "knee"));
  EXPECT_THAT(second->num_classes, ElementsAre(2, 0, 3));
}

TEST_F(SliceDatasetTest, CanonicalOrientationMakesFlippedStorageIdentical) {
  Manifest manifest = StandardManifest();
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee", "ankle"}, Options());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  at::Tensor a = SubjectMask(*dataset, "a");
  at::Tensor flipped = SubjectMask(*dataset, "a-flipped");
  EXPECT_TRUE(at::equal(dataset->images.index({a}), dataset->images.index({flipped})));
  EXPECT_TRUE(at::equal(dataset->labels.index({a}), dataset->labels.index({flipped})));
  // And the file really is stored mirrored.
  absl::StatusOr<Volume> raw = ReadVolume(dir_ / "af_image.nii.gz");
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_FALSE(at::equal(raw->voxels, SmallImage().voxels));
}

TEST_F(SliceDatasetTest, SlicesAreNormalizedPerVolumeAndPaddedWithTheBackground) {
  Manifest manifest = StandardManifest();
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee", "ankle"}, Options());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  // Subject b is subject a's image plus 3: the same after z-scoring.
  at::Tensor a = dataset->images.index({SubjectMask(*dataset, "a")});
  at::Tensor b = dataset->images.index({SubjectMask(*dataset, "b")});
  EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-4));
  at::Tensor inside = a.slice(1, 2, 10).slice(2, 1, 11);
  EXPECT_NEAR(inside.mean().item<double>(), 0.0, 0.1);
  // Padding is the lowest normalized value, i.e. the clipped minimum of the volume.
  const float pad = a[0][0][0].item<float>();
  EXPECT_NEAR(pad, inside.min().item<float>(), 1e-5);
  EXPECT_TRUE(a.slice(1, 0, 2).eq(pad).all().item<bool>());
}

TEST_F(SliceDatasetTest, InPlaneResamplingUsesNearestForLabels) {
  Manifest manifest = StandardManifest();
  SliceDatasetOptions options = Options();
  options.in_plane_spacing = 2.0;  // 10 x 8 at 1 mm -> 5 x 4 at 2 mm
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee", "ankle"}, options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 12);  // slices are not resampled along the slice axis
  at::Tensor a = dataset->labels.index({SubjectMask(*dataset, "a")});
  EXPECT_EQ(a[1].eq(1).sum().item<int64_t>(), 4);  // the 4x4 mm block is now 2x2 pixels
  at::Tensor unique = std::get<0>(at::_unique(a)).to(at::kLong).contiguous();
  // Nearest interpolation: no value between the structure indices appears.
  EXPECT_TRUE(at::equal(unique, at::tensor({0, 1}, at::kLong)) ||
              at::equal(unique, at::tensor({0, 1, 2}, at::kLong)))
      << unique;
}

TEST_F(SliceDatasetTest, BackgroundSliceFractionDropsEmptySlicesEvenly) {
  Manifest manifest = StandardManifest();
  SliceDatasetOptions options = Options();
  options.background_slice_fraction = 0.0;
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee", "ankle"}, options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 6);
  EXPECT_TRUE(dataset->foreground.all().item<bool>());
  EXPECT_TRUE(at::equal(dataset->positions, at::tensor({0.5f, 0.75f}).repeat({3})));

  options.background_slice_fraction = 0.5;  // 1 of the 2 empty slices per subject
  dataset = BuildSliceDataset(manifest, {"knee", "ankle"}, options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 9);
}

TEST_F(SliceDatasetTest, UnlabeledSubjectsAreLeftOutUnlessAsked) {
  Write(SmallImage(), "a_image.nii.gz");
  Write(SmallLabels(), "a_label.nii.gz");
  Write(SmallImage(1.f), "u_image.nii.gz");
  Manifest manifest = LoadYaml(R"(subjects:
  - {id: a, image: a_image.nii.gz, label: a_label.nii.gz, joint: knee}
  - {id: u, image: u_image.nii.gz, joint: knee}
labels:
  knee: {2: femur, 5: tibia}
)");
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee"}, Options());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_THAT(dataset->subject_ids, ElementsAre("a"));

  SliceDatasetOptions options = Options();
  options.include_unlabeled = true;
  options.background_slice_fraction = 0.0;  // never drops slices of unlabeled subjects
  dataset = BuildSliceDataset(manifest, {"knee"}, options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_THAT(dataset->subject_ids, ElementsAre("a", "u"));
  EXPECT_EQ(dataset->size(), 2 + 4);
  at::Tensor u = SubjectMask(*dataset, "u");
  EXPECT_FALSE(dataset->labeled.index({u}).any().item<bool>());
  EXPECT_TRUE(dataset->labeled.index({u.logical_not()}).all().item<bool>());
  EXPECT_TRUE(dataset->labels.index({u}).eq(0).all().item<bool>());
}

TEST_F(SliceDatasetTest, JointOutsideTheModelIsAnError) {
  Manifest manifest = StandardManifest();
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee"}, Options());
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(),
              AllOf(HasSubstr("subject 'b'"), HasSubstr("manifest.yaml:4"),
                    HasSubstr("joint 'ankle' is not one of the model's joints [knee]")));
}

TEST_F(SliceDatasetTest, MissingFileNamesSubjectAndFile) {
  Write(SmallImage(), "a_image.nii.gz");
  Manifest manifest = LoadYaml(R"(subjects:
  - {id: a, image: a_image.nii.gz, label: missing_label.nii.gz, joint: knee}
labels:
  knee: {2: femur}
)");
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee"}, Options());
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dataset.status().message(),
              AllOf(HasSubstr("subject 'a'"), HasSubstr("missing_label.nii.gz")));
}

TEST_F(SliceDatasetTest, UnmappedLabelValueIsAnError) {
  Write(SmallImage(), "a_image.nii.gz");
  Write(SmallLabels(), "a_label.nii.gz");
  Manifest manifest = LoadYaml(R"(subjects:
  - {id: a, image: a_image.nii.gz, label: a_label.nii.gz, joint: knee}
labels:
  knee: {2: femur}
)");
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee"}, Options());
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(),
              AllOf(HasSubstr("subject 'a'"), HasSubstr("a_label.nii.gz"),
                    HasSubstr("label values [5] are present but not in the mapping")));
}

TEST_F(SliceDatasetTest, LabelOnAnotherGridIsAnError) {
  Write(SmallImage(), "a_image.nii.gz");
  Volume labels = SmallLabels();
  labels.geometry.spacing[0] = 1.5;
  Write(labels, "a_label.nii.gz");
  Manifest manifest = LoadYaml(R"(subjects:
  - {id: a, image: a_image.nii.gz, label: a_label.nii.gz, joint: knee}
labels:
  knee: {2: femur, 5: tibia}
)");
  absl::StatusOr<SliceDataset> dataset = BuildSliceDataset(manifest, {"knee"}, Options());
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(),
              AllOf(HasSubstr("subject 'a'"), HasSubstr("a_label.nii.gz"), HasSubstr("spacing")));
}

TEST_F(SliceDatasetTest, RejectsBadOptions) {
  Manifest manifest = StandardManifest();
  SliceDatasetOptions options = Options();
  options.slice_axis = 3;
  EXPECT_THAT(BuildSliceDataset(manifest, {"knee", "ankle"}, options).status().message(),
              HasSubstr("slice_axis 3"));
  options = Options();
  options.background_slice_fraction = 1.5;
  EXPECT_THAT(BuildSliceDataset(manifest, {"knee", "ankle"}, options).status().message(),
              HasSubstr("background_slice_fraction"));
  EXPECT_THAT(BuildSliceDataset(manifest, {"knee", "knee"}, Options()).status().message(),
              HasSubstr("joint 'knee' appears twice"));
}

// --- Splits ---------------------------------------------------------------------------------

Manifest SplitManifest() {
  Manifest m;
  m.file = "/site/manifest.yaml";
  for (int i = 0; i < 10; ++i) {
    ManifestSubject s;
    s.id = "knee-" + std::to_string(i);
    s.joint = "knee";
    s.label = "l.nii.gz";
    m.subjects.push_back(s);
  }
  for (int i = 0; i < 4; ++i) {
    ManifestSubject s;
    s.id = "ankle-" + std::to_string(i);
    s.joint = "ankle";
    s.label = "l.nii.gz";
    m.subjects.push_back(s);
  }
  ManifestSubject unlabeled;
  unlabeled.id = "knee-unlabeled";
  unlabeled.joint = "knee";
  m.subjects.push_back(unlabeled);
  return m;
}

TEST(SplitTest, SplitsBySubjectStratifiedAndDeterministic) {
  Manifest m = SplitManifest();
  absl::StatusOr<SubjectSplit> split = SplitSubjects(m, 0.25, 7);
  ASSERT_TRUE(split.ok()) << split.status();
  // round(2.5) = 3 of 10 knees, round(1.0) = 1 of 4 ankles; the unlabeled one trains.
  ASSERT_EQ(split->validation.size(), 4u);
  EXPECT_EQ(split->train.size(), 11u);
  int knees = 0;
  for (size_t i : split->validation) knees += m.subjects[i].joint == "knee";
  EXPECT_EQ(knees, 3);
  EXPECT_THAT(split->train, ::testing::Contains(14u));
  std::vector<size_t> all = split->train;
  all.insert(all.end(), split->validation.begin(), split->validation.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);

  absl::StatusOr<SubjectSplit> again = SplitSubjects(m, 0.25, 7);
  EXPECT_EQ(again->validation, split->validation);
  bool any_different = false;
  for (uint64_t seed = 8; seed < 12; ++seed) {
    any_different |= SplitSubjects(m, 0.25, seed)->validation != split->validation;
  }
  EXPECT_TRUE(any_different);

  Manifest train = SelectSubjects(m, split->train);
  EXPECT_EQ(train.subjects.size(), 11u);
  EXPECT_EQ(train.subjects[0].id, m.subjects[split->train[0]].id);
}

TEST(SplitTest, EveryJointKeepsATrainingSubject) {
  Manifest m = SplitManifest();
  absl::StatusOr<SubjectSplit> split = SplitSubjects(m, 0.99, 1);
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(split->validation.size(), 9u + 3u);
  EXPECT_FALSE(SplitSubjects(m, 1.0, 1).ok());
}

TEST(SplitTest, KFoldValidatesEachLabeledSubjectOnce) {
  Manifest m = SplitManifest();
  absl::StatusOr<std::vector<SubjectSplit>> folds = KFoldSplits(m, 5, 3);
  ASSERT_TRUE(folds.ok()) << folds.status();
  ASSERT_EQ(folds->size(), 5u);
  std::vector<int> times(m.subjects.size(), 0);
  for (const SubjectSplit& fold : *folds) {
    EXPECT_THAT(fold.validation.size(), ::testing::AnyOf(2u, 3u));  // 14 = 3 + 3 + 3 + 3 + 2
    EXPECT_EQ(fold.train.size() + fold.validation.size(), m.subjects.size());
    for (size_t i : fold.validation) ++times[i];
  }
  for (size_t i = 0; i < 14; ++i) EXPECT_EQ(times[i], 1) << i;
  EXPECT_EQ(times[14], 0);  // unlabeled: always training
  EXPECT_THAT(KFoldSplits(m, 15, 3).status().message(),
              HasSubstr("14 labeled subject(s) cannot fill 15 folds"));
  EXPECT_FALSE(KFoldSplits(m, 1, 3).ok());
}

TEST(SliceOptionsTest, AutoAxisIsTheCoarsestSpacing) {
  Geometry g;
  g.spacing = {0.5, 3.0, 0.5};
  EXPECT_EQ(AutoSliceAxis(g), 1);
  g.spacing = {1, 1, 1};
  EXPECT_EQ(AutoSliceAxis(g), 2);
}

}  // namespace
}  // namespace fedjoint::common::data
