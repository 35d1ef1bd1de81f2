#include "common/data/phantom.h"

#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/data/phantom_anatomy.h"

namespace fedjoint::common::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A coarse acquisition (64 x 64 pixels of 2.2 mm, default slices) that still covers the joint:
// fast enough to generate many subjects in a test.
PhantomOptions Coarse(const std::string& joint, const std::string& domain = "t1",
                      uint64_t seed = 7) {
  PhantomOptions o;
  o.joint = joint;
  o.domain = domain;
  o.seed = seed;
  o.in_plane_size = 64;
  o.in_plane_spacing_mm = 2.2;
  o.sub_slices = 2;
  return o;
}

PhantomSubject Generate(const PhantomOptions& options, int subject) {
  absl::StatusOr<PhantomSubject> phantom = GeneratePhantom(options, subject);
  EXPECT_TRUE(phantom.ok()) << phantom.status();
  return phantom.ok() ? *std::move(phantom) : PhantomSubject{};
}

bool Equal(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && at::equal(a, b);
}

double VoxelVolumeMm3(const Geometry& g) { return g.spacing[0] * g.spacing[1] * g.spacing[2]; }

// Mean image intensity over voxels of one tissue class.
double MeanOfTissue(const PhantomSubject& p, PhantomTissue tissue) {
  at::Tensor mask = p.tissue.voxels == static_cast<int>(tissue);
  const int64_t n = mask.sum().item<int64_t>();
  EXPECT_GT(n, 0) << "no voxels of tissue " << static_cast<int>(tissue);
  return p.image.voxels.masked_select(mask).sum().item<double>() / static_cast<double>(n);
}

TEST(PhantomTest, NamesAndIds) {
  EXPECT_THAT(PhantomJoints(), ElementsAre("ankle", "knee", "shoulder"));
  EXPECT_THAT(PhantomDomains(), ElementsAre("t1", "pd", "t2fs", "pdfs", "t2"));
  EXPECT_THAT(*PhantomBoneNames("knee"), ElementsAre("femur", "tibia", "patella", "fibula"));
  EXPECT_THAT(*PhantomBoneNames("ankle"), ElementsAre("calcaneus", "talus", "tibia"));
  EXPECT_THAT(*PhantomBoneNames("shoulder"), ElementsAre("humerus", "scapula"));
  EXPECT_EQ(PhantomSubjectId("knee", "t1", 7), "knee-t1-007");
  EXPECT_EQ(PhantomSubjectId("ankle", "t2fs", 1234), "ankle-t2fs-1234");
}

TEST(PhantomTest, RejectsBadOptionsWithClearMessages) {
  PhantomOptions o = Coarse("elbow");
  absl::StatusOr<PhantomSubject> r = GeneratePhantom(o, 0);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "unknown phantom joint 'elbow': valid joints are ankle, knee, shoulder");
  EXPECT_EQ(PhantomBoneNames("elbow").status().code(), absl::StatusCode::kInvalidArgument);

  o = Coarse("knee", "flair");
  EXPECT_EQ(GeneratePhantom(o, 0).status().message(),
            "unknown phantom domain 'flair': valid domains (MR contrasts) are t1, pd, t2fs, pdfs, "
            "t2");

  o = Coarse("knee");
  EXPECT_THAT(GeneratePhantom(o, -1).status().message(), HasSubstr("subject index must be >= 0"));
  o.sub_slices = 0;
  EXPECT_THAT(GeneratePhantom(o, 0).status().message(),
              HasSubstr("phantom option sub_slices must be in [1, 16], got 0"));
  o = Coarse("knee");
  o.in_plane_size = 8;
  EXPECT_THAT(GeneratePhantom(o, 0).status().message(), HasSubstr("in_plane_size"));
  o = Coarse("knee");
  o.min_age_years = 12;
  o.max_age_years = 9;
  EXPECT_THAT(GeneratePhantom(o, 0).status().message(), HasSubstr("min_age_years"));
  o = Coarse("knee");
  o.slice_gap_mm = -1;
  EXPECT_THAT(GeneratePhantom(o, 0).status().message(), HasSubstr("slice_gap_mm"));
}

TEST(PhantomTest, SameSeedGivesIdenticalVoxels) {
  const PhantomOptions o = Coarse("knee");
  const PhantomSubject a = Generate(o, 3);
  const PhantomSubject b = Generate(o, 3);
  EXPECT_EQ(a.id, "knee-t1-003");
  EXPECT_TRUE(Equal(a.image.voxels, b.image.voxels));
  EXPECT_TRUE(Equal(a.label.voxels, b.label.voxels));
  EXPECT_TRUE(Equal(a.tissue.voxels, b.tissue.voxels));
  EXPECT_EQ(a.age_years, b.age_years);
  EXPECT_EQ(a.image.geometry.spacing, b.image.geometry.spacing);
}

TEST(PhantomTest, SeedSubjectAndDomainChangeTheSubject) {
  const PhantomOptions o = Coarse("knee");
  const PhantomSubject base = Generate(o, 3);
  const PhantomSubject other_subject = Generate(o, 4);
  const PhantomSubject other_seed = Generate(Coarse("knee", "t1", 8), 3);
  const PhantomSubject other_domain = Generate(Coarse("knee", "pd"), 3);
  for (const PhantomSubject* p : {&other_subject, &other_seed, &other_domain}) {
    EXPECT_FALSE(Equal(base.image.voxels, p->image.voxels)) << p->id;
    EXPECT_FALSE(Equal(base.label.voxels, p->label.voxels)) << p->id;
  }
}

TEST(PhantomTest, SharedAnatomyRendersOneSubjectInSeveralContrasts) {
  PhantomOptions t1 = Coarse("knee", "t1");
  PhantomOptions t2fs = Coarse("knee", "t2fs");
  t1.share_anatomy_across_domains = t2fs.share_anatomy_across_domains = true;
  const PhantomSubject a = Generate(t1, 2);
  const PhantomSubject b = Generate(t2fs, 2);
  EXPECT_TRUE(Equal(a.label.voxels, b.label.voxels));
  EXPECT_TRUE(Equal(a.tissue.voxels, b.tissue.voxels));
  EXPECT_FALSE(Equal(a.image.voxels, b.image.voxels));
  EXPECT_EQ(a.age_years, b.age_years);
}

TEST(PhantomTest, VolumesHaveTheConfiguredGeometryAndTypes) {
  PhantomOptions o = Coarse("ankle");
  o.in_plane_size = 48;
  o.in_plane_spacing_mm = 2.5;
  o.num_slices = 9;
  o.slice_thickness_mm = 3.5;
  o.slice_gap_mm = 0.5;
  const PhantomSubject p = Generate(o, 0);
  for (const Volume* v : {&p.image, &p.label, &p.tissue}) {
    EXPECT_THAT(v->voxels.sizes(), ElementsAre(9, 48, 48));
    EXPECT_EQ(v->geometry.size, (std::array<int64_t, 3>{48, 48, 9}));
    EXPECT_EQ(v->geometry.spacing, (std::array<double, 3>{2.5, 2.5, 4.0}));
    EXPECT_TRUE(v->voxels.is_contiguous());
  }
  EXPECT_EQ(p.image.voxels.scalar_type(), at::kFloat);
  EXPECT_EQ(p.label.voxels.scalar_type(), at::kByte);
  EXPECT_EQ(p.tissue.voxels.scalar_type(), at::kByte);
  EXPECT_TRUE(at::isfinite(p.image.voxels).all().item<bool>());
  EXPECT_GE(p.image.voxels.min().item<float>(), 0.0f);  // a magnitude image
  // Sagittal: i runs posterior (+y in LPS), j inferior (-z), k left-to-right (-x); the volume is
  // centred on the origin of physical space.
  EXPECT_EQ(p.image.geometry.direction, (std::array<double, 9>{0, 0, -1, 1, 0, 0, 0, -1, 0}));
  EXPECT_DOUBLE_EQ(p.image.geometry.origin[1], -2.5 * 47 / 2);
}

TEST(PhantomTest, DefaultGeometryIsAnisotropicAndScalesWithTheChild) {
  PhantomOptions o;
  o.joint = "knee";
  o.in_plane_size = 32;  // keep the test fast; the pixel size is still the automatic one
  o.num_slices = 4;
  const PhantomSubject young = [&] {
    PhantomOptions y = o;
    y.min_age_years = y.max_age_years = 5;
    return Generate(y, 0);
  }();
  const PhantomSubject old = [&] {
    PhantomOptions y = o;
    y.min_age_years = y.max_age_years = 17;
    return Generate(y, 0);
  }();
  for (const PhantomSubject* p : {&young, &old}) {
    const auto& s = p->image.geometry.spacing;
    EXPECT_EQ(s[0], s[1]);
    EXPECT_GE(s[0], 0.6);
    EXPECT_LE(s[0], 0.95);
    EXPECT_DOUBLE_EQ(s[2], 3.3);  // 3 mm slices with a 0.3 mm gap
  }
  EXPECT_LT(young.image.geometry.spacing[0], old.image.geometry.spacing[0]);
  EXPECT_LT(young.scale, old.scale);
}

// Every bone of every joint is present, label values are exactly 0..K, volumes are plausible.
TEST(PhantomTest, EveryBoneIsPresentWithPlausibleVolume) {
  // Ossified volume (cm^3) inside the field of view over ages 5-17: young children's bones are
  // small and still largely cartilage (the talus of a 5-year-old is a ~3 cm^3 nucleus).
  const std::map<std::string, std::vector<std::pair<double, double>>> ranges = {
      {"knee", {{15, 700}, {15, 700}, {0.3, 40}, {0.5, 60}}},
      {"ankle", {{4, 400}, {1.5, 150}, {8, 250}}},
      {"shoulder", {{10, 600}, {5, 300}}},
  };
  for (const std::string& joint : PhantomJoints()) {
    const std::vector<std::string> bones = *PhantomBoneNames(joint);
    for (int subject = 0; subject < 4; ++subject) {
      const PhantomSubject p = Generate(Coarse(joint, "pd", 11), subject);
      SCOPED_TRACE(p.id + " age " + std::to_string(p.age_years));
      const at::Tensor counts =
          at::bincount(p.label.voxels.flatten().to(at::kLong), {}, 256).slice(0, 0, 256);
      EXPECT_EQ(counts.slice(0, static_cast<int64_t>(bones.size()) + 1).sum().item<int64_t>(), 0)
          << "label values above " << bones.size();
      std::vector<double> cm3;
      for (size_t b = 0; b < bones.size(); ++b) {
        cm3.push_back(counts[static_cast<int64_t>(b) + 1].item<int64_t>() *
                      VoxelVolumeMm3(p.label.geometry) / 1000.0);
        const auto [lo, hi] = ranges.at(joint)[b];
        EXPECT_GT(cm3[b], lo) << bones[b];
        EXPECT_LT(cm3[b], hi) << bones[b];
      }
      if (joint == "knee") {
        EXPECT_GT(cm3[0], cm3[2]) << "femur > patella";
        EXPECT_GT(cm3[1], cm3[3]) << "tibia > fibula";
      }
      EXPECT_GT(p.age_years, 5.0);
      EXPECT_LT(p.age_years, 17.0);
    }
  }
}

TEST(PhantomTest, ContrastsOrderTissuesLikeMri) {
  PhantomOptions t1 = Coarse("knee", "t1");
  PhantomOptions t2fs = Coarse("knee", "t2fs");
  PhantomOptions pd = Coarse("knee", "pd");
  t1.share_anatomy_across_domains = t2fs.share_anatomy_across_domains =
      pd.share_anatomy_across_domains = true;
  for (int subject = 0; subject < 2; ++subject) {
    const PhantomSubject a = Generate(t1, subject);
    const PhantomSubject b = Generate(t2fs, subject);
    const PhantomSubject c = Generate(pd, subject);
    SCOPED_TRACE(a.id);
    // Marrow is darker than fat on T1 (red marrow in children) but brighter with fat saturation.
    EXPECT_LT(MeanOfTissue(a, PhantomTissue::kMarrow) / MeanOfTissue(a, PhantomTissue::kFat), 0.95);
    EXPECT_GT(MeanOfTissue(b, PhantomTissue::kMarrow) / MeanOfTissue(b, PhantomTissue::kFat), 1.2);
    // Fat dominates muscle on T1 and PD, not on T2FS.
    EXPECT_GT(MeanOfTissue(a, PhantomTissue::kFat), 2.0 * MeanOfTissue(a, PhantomTissue::kMuscle));
    EXPECT_GT(MeanOfTissue(c, PhantomTissue::kFat), 1.5 * MeanOfTissue(c, PhantomTissue::kMuscle));
    EXPECT_LT(MeanOfTissue(b, PhantomTissue::kFat), MeanOfTissue(b, PhantomTissue::kMuscle));
  }
}

// Mean intensity over voxels of `tissue` whose 3 x 3 in-plane neighbourhood is the same tissue
// (thin structures are partial-volumed across the thick slices and the point spread).
double PureMeanOfTissue(const PhantomSubject& p, PhantomTissue tissue) {
  const at::Tensor other =
      (p.tissue.voxels != static_cast<int>(tissue)).to(at::kFloat).unsqueeze(1);
  const at::Tensor pure = at::max_pool2d(other, {3, 3}, {1, 1}, {1, 1}).squeeze(1) == 0;
  const int64_t n = pure.sum().item<int64_t>();
  EXPECT_GT(n, 10) << "too few pure voxels of tissue " << static_cast<int>(tissue);
  return p.image.voxels.masked_select(pure).sum().item<double>() / static_cast<double>(n);
}

// At the native pixel size: the cortex is dark on every contrast, fluid is brighter than muscle
// with fat suppression and darker than fat on T1.
TEST(PhantomTest, CortexIsDarkAndFluidFollowsT2) {
  for (const char* domain : {"t1", "pd", "t2fs"}) {
    PhantomOptions o = Coarse("knee", domain);
    o.in_plane_size = 112;
    o.in_plane_spacing_mm = 0.8;
    o.num_slices = 10;
    o.share_anatomy_across_domains = true;
    const PhantomSubject p = Generate(o, 1);
    SCOPED_TRACE(p.id);
    const double muscle = PureMeanOfTissue(p, PhantomTissue::kMuscle);
    EXPECT_LT(PureMeanOfTissue(p, PhantomTissue::kCortex), 0.75 * muscle);
    if (std::string(domain) == "t1") {
      EXPECT_LT(MeanOfTissue(p, PhantomTissue::kFluid), 0.6 * MeanOfTissue(p, PhantomTissue::kFat));
    }
    if (std::string(domain) == "t2fs") {
      EXPECT_GT(MeanOfTissue(p, PhantomTissue::kFluid), 1.5 * muscle);
    }
  }
}

TEST(PhantomTest, NoiseAndBiasCanBeTurnedOff) {
  PhantomOptions o = Coarse("shoulder");
  o.noise_scale = 0;
  o.bias_scale = 0;
  const PhantomSubject clean = Generate(o, 1);
  // Air at least two pixels away from the body (the in-plane point spread reaches one pixel).
  const at::Tensor body =
      (clean.tissue.voxels != static_cast<int>(PhantomTissue::kAir)).to(at::kFloat).unsqueeze(1);
  const at::Tensor air = at::max_pool2d(body, {5, 5}, {1, 1}, {2, 2}).squeeze(1) == 0;
  ASSERT_GT(air.sum().item<int64_t>(), 1000);
  EXPECT_EQ(clean.image.voxels.masked_select(air).max().item<float>(), 0.0f);

  o.noise_scale = 1;
  const PhantomSubject noisy = Generate(o, 1);
  EXPECT_GT(noisy.noise_sigma, 0);
  // Rician noise in air: the Rayleigh mean sigma * sqrt(pi / 2).
  const double air_mean = noisy.image.voxels.masked_select(air).mean().item<double>();
  EXPECT_NEAR(air_mean, noisy.noise_sigma * std::sqrt(M_PI / 2), 0.1 * noisy.noise_sigma);
}

TEST(PhantomTest, PhysisCanBeLeftOutOfTheLabel) {
  PhantomOptions o = Coarse("knee");
  o.min_age_years = o.max_age_years = 8;  // open growth plates
  const PhantomSubject with = Generate(o, 0);
  o.physis_in_label = false;
  const PhantomSubject without = Generate(o, 0);
  const at::Tensor physis = with.tissue.voxels == static_cast<int>(PhantomTissue::kPhysis);
  ASSERT_GT(physis.sum().item<int64_t>(), 20);
  EXPECT_EQ(without.label.voxels.masked_select(physis).max().item<uint8_t>(), 0);
  EXPECT_GT((with.label.voxels.masked_select(physis) > 0).sum().item<int64_t>(),
            physis.sum().item<int64_t>() / 2);
  EXPECT_TRUE(Equal(with.image.voxels, without.image.voxels));
}

TEST(PhantomTest, GrowthPlatesCloseInOlderTeenagers) {
  PhantomOptions o = Coarse("knee");
  o.min_age_years = o.max_age_years = 6;
  for (int s = 0; s < 3; ++s) EXPECT_FALSE(Generate(o, s).physis_closed);
  o.min_age_years = o.max_age_years = 17.5;
  for (int s = 0; s < 3; ++s) EXPECT_TRUE(Generate(o, s).physis_closed);
}

// The renderer skips, per 8 x 8-pixel tile, shapes that provably cannot matter there; that must
// not change a single voxel.
TEST(PhantomTest, TileCullingIsExact) {
  for (const std::string& joint : PhantomJoints()) {
    for (double spacing : {0.8, 2.2}) {
      PhantomOptions o = Coarse(joint, "t2fs", 21);
      o.in_plane_size = spacing < 1 ? 112 : 64;
      o.in_plane_spacing_mm = spacing;
      o.num_slices = spacing < 1 ? 6 : 0;
      for (int subject = 0; subject < 2; ++subject) {
        absl::StatusOr<PhantomSubject> tiled =
            phantom_internal::GeneratePhantomImpl(o, subject, /*use_tiles=*/true);
        absl::StatusOr<PhantomSubject> exhaustive =
            phantom_internal::GeneratePhantomImpl(o, subject, /*use_tiles=*/false);
        ASSERT_TRUE(tiled.ok() && exhaustive.ok());
        SCOPED_TRACE(tiled->id + " spacing " + std::to_string(spacing));
        EXPECT_TRUE(Equal(tiled->tissue.voxels, exhaustive->tissue.voxels));
        EXPECT_TRUE(Equal(tiled->label.voxels, exhaustive->label.voxels));
        EXPECT_TRUE(Equal(tiled->image.voxels, exhaustive->image.voxels));
      }
    }
  }
}

// Full default resolution: generation stays around a second per subject on one core (bound
// loosely: the test machine may be busy).
TEST(PhantomTest, DefaultSubjectGeneratesQuickly) {
  for (const std::string& joint : PhantomJoints()) {
    PhantomOptions o;
    o.joint = joint;
    const auto start = std::chrono::steady_clock::now();
    const PhantomSubject p = Generate(o, 0);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 10.0) << joint;
    EXPECT_EQ(p.image.geometry.size[0], 176);
    EXPECT_GE(p.image.geometry.size[2], 20);
    EXPECT_LE(p.image.geometry.size[2], 40);
    RecordProperty(joint + "_seconds", std::to_string(seconds));
  }
}

}  // namespace
}  // namespace fedjoint::common::data
