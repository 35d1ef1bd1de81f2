#include "common/data/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ManifestTest, ParsesSubjectsAndLabelMaps) {
  auto m = ParseManifest(R"(
subjects:
  - id: knee-000
    image: a/img.nii.gz
    label: a/lab.nii.gz
    joint: knee
    domain: t1
  - id: knee-001
    image: /abs/img2.nrrd
    joint: knee
labels:
  knee: {1: femur, 2: tibia, 4: fibula, 3: patella}
)",
                         "/data/site/manifest.yaml");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->subjects.size(), 2u);
  EXPECT_EQ(m->subjects[0].image, "/data/site/a/img.nii.gz");
  EXPECT_EQ(*m->subjects[0].label, "/data/site/a/lab.nii.gz");
  EXPECT_EQ(m->subjects[0].line, 3);
  EXPECT_EQ(m->subjects[1].image, "/abs/img2.nrrd");
  EXPECT_FALSE(m->subjects[1].label.has_value());
  EXPECT_THAT(m->Structures("knee"), ElementsAre("femur", "tibia", "patella", "fibula"));
  EXPECT_TRUE(m->Structures("ankle").empty());
}

TEST(ManifestTest, ListsEveryStructuralProblemWithLines) {
  auto m = ParseManifest(R"(subjects:
  - id: a
    image: x.nii
    joint: knee
    colour: blue
  - image: y.nii
    joint: knee
  - id: c
    image: [1, 2]
    joint: knee
labels:
  knee: {1: femur, two: tibia, 0: bg, 3: femur}
extra: 1
)",
                         "m.yaml");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(),
            "m.yaml: 7 problems\n"
            "m.yaml:13: unknown key 'extra' (expected subjects, labels)\n"
            "m.yaml:12: labels.knee: label value 'two' is not an integer\n"
            "m.yaml:12: labels.knee: label value 0 out of range (1..32767; 0 is background)\n"
            "m.yaml:12: labels.knee: structure 'femur' is named by two label values\n"
            "m.yaml:5: subjects[0]: unknown key 'colour' (expected id, image, label, joint, "
            "domain, series_uid)\n"
            "m.yaml:6: subjects[1]: missing required key 'id'\n"
            "m.yaml:9: subjects[2].image: expected a non-empty string");
}

TEST(ManifestTest, SyntaxErrorAndMissingFile) {
  auto bad = ParseManifest("subjects: [\n  - id: a\n", "broken.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("broken.yaml:"));
  auto missing = LoadManifest("/nonexistent/manifest.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/manifest.yaml"));
}

}  // namespace
}  // namespace fedjoint::common::data
