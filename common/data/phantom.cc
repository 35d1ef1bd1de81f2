#include "common/data/phantom.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/data/phantom_anatomy.h"
#include "common/data/phantom_random.h"

namespace fedjoint::common::data {

using phantom_internal::Affine;
using phantom_internal::BoneSpec;
using phantom_internal::CartilageMode;
using phantom_internal::CombineSeeds;
using phantom_internal::JointAnatomy;
using phantom_internal::M3;
using phantom_internal::Primitive;
using phantom_internal::PrimKind;
using phantom_internal::Rotation;
using PhantomRng = phantom_internal::Rng;
using phantom_internal::Shape;
using phantom_internal::SoftSpec;
using phantom_internal::Transpose;
using phantom_internal::V3;
using phantom_internal::ValueNoise;

namespace {

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

const std::vector<std::string>& PhantomJoints() {
  static const auto* joints = new std::vector<std::string>{"ankle", "knee", "shoulder"};
  return *joints;
}

const std::vector<std::string>& PhantomDomains() {
  static const auto* domains = new std::vector<std::string>{"t1", "pd", "t2fs", "pdfs", "t2"};
  return *domains;
}

absl::StatusOr<std::vector<std::string>> PhantomBoneNames(std::string_view joint) {
  if (!Contains(PhantomJoints(), joint)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown phantom joint '", std::string(joint),
                                                   "': valid joints are ",
                                                   absl::StrJoin(PhantomJoints(), ", ")));
  }
  return phantom_internal::ReferenceAnatomy(joint).label_names;
}

std::string PhantomSubjectId(std::string_view joint, std::string_view domain, int subject) {
  std::string number = std::to_string(subject);
  if (number.size() < 3) number.insert(0, 3 - number.size(), '0');
  return absl::StrCat(std::string(joint), "-", std::string(domain), "-", number);
}

namespace {

using Tissue = PhantomTissue;
constexpr int kNumTissues = static_cast<int>(Tissue::kCount);

// Relative signal of each tissue per contrast (fat on T1 = 1). Marrow is a mix of red
// (haematopoietic) and yellow (fatty) marrow; children have more red marrow, darker on T1.
struct Contrast {
  std::array<float, kNumTissues> value{};
  float red_marrow = 0;
  float yellow_marrow = 0;
  bool fat_suppressed = false;
};

Contrast ContrastFor(std::string_view domain) {
  // Order: air, skin, fat, muscle, fibrous, vessel, fluid, cartilage, physis, cortex, (marrow).
  Contrast c;
  if (domain == "t1") {
    c.value = {0, 0.55f, 1.00f, 0.36f, 0.06f, 0.10f, 0.20f, 0.42f, 0.45f, 0.03f, 0};
    c.red_marrow = 0.48f;
    c.yellow_marrow = 0.92f;
  } else if (domain == "pd") {
    c.value = {0, 0.62f, 0.92f, 0.45f, 0.08f, 0.15f, 0.80f, 0.64f, 0.72f, 0.04f, 0};
    c.red_marrow = 0.60f;
    c.yellow_marrow = 0.88f;
  } else if (domain == "t2fs") {
    c.value = {0, 0.30f, 0.10f, 0.26f, 0.05f, 0.45f, 1.00f, 0.45f, 0.64f, 0.03f, 0};
    c.red_marrow = 0.40f;
    c.yellow_marrow = 0.10f;
    c.fat_suppressed = true;
  } else if (domain == "pdfs") {
    c.value = {0, 0.36f, 0.13f, 0.33f, 0.06f, 0.40f, 0.86f, 0.55f, 0.68f, 0.03f, 0};
    c.red_marrow = 0.44f;
    c.yellow_marrow = 0.13f;
    c.fat_suppressed = true;
  } else {  // t2
    c.value = {0, 0.45f, 0.62f, 0.24f, 0.05f, 0.40f, 1.00f, 0.36f, 0.56f, 0.03f, 0};
    c.red_marrow = 0.44f;
    c.yellow_marrow = 0.58f;
  }
  return c;
}

float Lerp(float a, float b, float t) { return a + (b - a) * t; }
float Clamp01(float t) { return std::clamp(t, 0.0f, 1.0f); }
float SmoothStep(float e0, float e1, float x) {
  const float t = Clamp01((x - e0) / (e1 - e0));
  return t * t * (3.0f - 2.0f * t);
}

// Everything drawn for one subject, and the per-point evaluation of its anatomy and contrast.
class PhantomRenderer {
 public:
  struct Sample {
    Tissue tissue = Tissue::kAir;
    uint8_t label = 0;
    float value = 0;
  };

  // Which shapes matter for a small region (a tile of the image): shapes far from it are
  // skipped, and soft structures containing it need no evaluation. Distances are in mm.
  static constexpr int kMaxShapes = 24;
  // Bones need true distances this close (cartilage, cortex and carving happen within it).
  static constexpr float kBoneMarginMm = 14.0f;
  enum class Reach : uint8_t { kFar, kInside, kNear };
  struct Tile {
    bool air = false;
    std::array<Reach, kMaxShapes> envelope{}, bone{}, soft{};
    Reach capsule = Reach::kNear;
    // Stand-in distance for shapes not evaluated per point: a lower bound when far, an upper
    // bound when inside.
    std::array<float, kMaxShapes> envelope_bound{}, bone_bound{};
  };

  // `spacing` 0: the joint's default pixel size, scaled with the child (a technologist fits the
  // field of view to the patient).
  PhantomRenderer(const PhantomOptions& options, int subject, const JointAnatomy& reference,
                  const Contrast& contrast, int64_t size, double spacing, int64_t slices);

  double spacing() const { return spacing_; }

  // `radius_mm` bounds the distance of the tile's points from `centre`.
  void PrepareTile(V3 centre, float radius_mm, Tile* tile) const;
  // A tile where every shape is evaluated at every point (the reference for tests).
  void PrepareExhaustiveTile(Tile* tile) const;
  Sample Evaluate(V3 p_img, const Tile& tile) const;

  double age() const { return age_; }
  bool female() const { return female_; }
  float scale() const { return scale_; }
  float pose_deg() const { return pose_deg_; }
  bool physis_closed() const { return physis_closed_; }
  uint64_t acquisition_seed() const { return acquisition_seed_; }

 private:
  struct PhysisParams {
    V3 e1, e2;  // unit vectors spanning the plate
    float amp = 0, k1 = 0, k2 = 0, phase1 = 0, phase2 = 0, offset = 0;
  };

  void JitterShape(Shape* shape, PhantomRng& rng, float center_sd, float radius_sd);
  void BuildDeformation(PhantomRng& rng);
  V3 Displacement(V3 p) const;
  float PhysisCoordinateMm(int bone, V3 q) const;
  Sample BoneSample(int bone, V3 q, float d_full, V3 p) const;
  // `d_bone`, `d_bone2`: distances to the nearest and second-nearest bone.
  Sample SoftSample(const std::array<V3, 3>& q, float d_env, float d_bone, float d_bone2, V3 p,
                    const Tile& tile) const;
  std::array<V3, 3> ToReference(V3 p) const;
  float FatValue(V3 p) const;

  JointAnatomy anatomy_;
  Contrast contrast_;
  bool physis_in_label_ = true;

  // Subject.
  double age_ = 12;
  float youth_ = 0.7f;  // 0 at 5 years, 1 from 15
  bool female_ = false;
  float scale_ = 1;
  float sdf_scale_ = 1;  // reference mm -> mm
  float pose_deg_ = 0;
  bool physis_closed_ = false;
  float physis_mm_ = 1.2f;
  float cortex_shaft_mm_ = 2.5f;
  float subcut_fat_mm_ = 5;
  float skin_mm_ = 1.2f;
  float envelope_offset_mm_ = 0;
  float effusion_ = 0;
  float fluid_layer_mm_ = 0.5f;
  float marrow_offset_ = 0;
  std::vector<float> cartilage_mm_;
  std::vector<PhysisParams> physis_;
  std::array<Affine, 3> to_ref_;

  // Smooth displacement field on a coarse grid over the field of view (image frame, mm).
  V3 grid_origin_;
  float grid_step_ = 6;
  int grid_n_[3] = {0, 0, 0};
  std::vector<V3> grid_;

  // Textures.
  ValueNoise marrow_coarse_, marrow_fine_, muscle_septa_, muscle_fine_, fat_septa_;

  // Acquisition-dependent (contrast jitter, fat-suppression failure).
  uint64_t acquisition_seed_ = 0;
  float fs_fail_strength_ = 0;
  float fs_fail_cx_ = 0, fs_fail_cy_ = 0;
  float half_fov_ = 60;
  double spacing_ = 0.8;
};

PhantomRenderer::PhantomRenderer(const PhantomOptions& options, int subject,
                                 const JointAnatomy& reference, const Contrast& contrast,
                                 int64_t size, double spacing, int64_t slices)
    : anatomy_(reference), contrast_(contrast), physis_in_label_(options.physis_in_label) {
  uint64_t base = CombineSeeds(options.seed, Fingerprint(options.joint));
  base = CombineSeeds(base, static_cast<uint64_t>(subject));
  const uint64_t anatomy_seed =
      options.share_anatomy_across_domains ? base : CombineSeeds(base, Fingerprint(options.domain));
  acquisition_seed_ =
      CombineSeeds(CombineSeeds(base, Fingerprint(options.domain)), Fingerprint("acquisition"));
  PhantomRng rng(CombineSeeds(anatomy_seed, Fingerprint("anatomy")));

  // Age, sex and size. Distal femur width grows from ~50 mm at 5 to ~85 mm at 17 years; the
  // reference anatomy is a 70 mm child.
  age_ = rng.Uniform(options.min_age_years, options.max_age_years);
  female_ = rng.Bernoulli(0.5);
  const double growth = std::clamp(age_, 3.0, 18.0);
  double size_factor = (50.0 + 35.0 * (growth - 5.0) / 12.0) / 70.0;
  if (female_ && growth > 12) size_factor *= 1.0 - 0.05 * (growth - 12.0) / 6.0;
  scale_ = static_cast<float>(size_factor * rng.ClippedNormal(1.0, 0.05));
  const V3 axis_scale{static_cast<float>(rng.ClippedNormal(1.0, 0.035)),
                      static_cast<float>(rng.ClippedNormal(1.0, 0.035)),
                      static_cast<float>(rng.ClippedNormal(1.0, 0.035))};
  sdf_scale_ = scale_ * std::cbrt(axis_scale.x * axis_scale.y * axis_scale.z);
  youth_ = Clamp01(static_cast<float>((age_ - 5.0) / 10.0));  // 0 at 5, 1 at 15+
  const float youth = youth_;
  const float closure_age =
      static_cast<float>(female_ ? rng.Uniform(13.5, 15.5) : rng.Uniform(15.0, 17.0));
  physis_closed_ = age_ > closure_age;
  physis_mm_ = physis_closed_ ? 0.5f
                              : static_cast<float>(Lerp(1.9f, 0.8f, Clamp01((age_ - 5) / 12)) *
                                                   rng.Uniform(0.85, 1.15));
  cortex_shaft_mm_ = static_cast<float>((2.2 + 0.15 * (growth - 5.0)) * rng.Uniform(0.85, 1.15));
  subcut_fat_mm_ = static_cast<float>(rng.Uniform(2.5, 10.0));
  skin_mm_ = static_cast<float>(rng.Uniform(1.0, 1.6));
  envelope_offset_mm_ = static_cast<float>(rng.ClippedNormal(0.0, 3.0));
  effusion_ = static_cast<float>(std::pow(rng.Uniform(), 1.5));
  fluid_layer_mm_ = 0.3f + 1.5f * effusion_;
  marrow_offset_ = static_cast<float>(rng.ClippedNormal(0.0, 0.07));

  // Pose.
  pose_deg_ = static_cast<float>(rng.Uniform(anatomy_.pose_min_deg, anatomy_.pose_max_deg));
  const float twist = static_cast<float>(rng.Uniform(-1.0, 1.0)) * anatomy_.twist_max_deg;
  const M3 global = Rotation(2, static_cast<float>(rng.ClippedNormal(0, 5))) *
                    Rotation(1, static_cast<float>(rng.ClippedNormal(0, 4))) *
                    Rotation(0, static_cast<float>(rng.ClippedNormal(0, 4)));
  const V3 shift{static_cast<float>(rng.ClippedNormal(0, 4)),
                 static_cast<float>(rng.ClippedNormal(0, 4)),
                 static_cast<float>(rng.ClippedNormal(0, 4))};

  // Per-bone shape jitter, cartilage and growth plates.
  for (BoneSpec& bone : anatomy_.bones) {
    JitterShape(&bone.shape, rng, 1.0f, 0.05f);
    const float cart = Lerp(bone.cartilage_young_mm, bone.cartilage_old_mm, youth) *
                       static_cast<float>(rng.Uniform(0.85, 1.15));
    cartilage_mm_.push_back(cart);
    PhysisParams pp;
    const V3 n = bone.physis_normal;
    const V3 helper = std::fabs(n.x) < 0.9f ? V3{1, 0, 0} : V3{0, 1, 0};
    pp.e1 = phantom_internal::Normalized(helper - n * phantom_internal::Dot(helper, n));
    pp.e2 = {n.y * pp.e1.z - n.z * pp.e1.y, n.z * pp.e1.x - n.x * pp.e1.z,
             n.x * pp.e1.y - n.y * pp.e1.x};
    pp.amp = bone.undulation_mm * static_cast<float>(rng.Uniform(0.6, 1.3));
    pp.k1 = 6.2831853f / static_cast<float>(rng.Uniform(26.0, 45.0));
    pp.k2 = 6.2831853f / static_cast<float>(rng.Uniform(26.0, 45.0));
    pp.phase1 = static_cast<float>(rng.Uniform(0, 6.2831853));
    pp.phase2 = static_cast<float>(rng.Uniform(0, 6.2831853));
    pp.offset = static_cast<float>(rng.ClippedNormal(0, 1.5));
    physis_.push_back(pp);
  }
  for (Shape& shape : anatomy_.envelope) JitterShape(&shape, rng, 2.0f, 0.04f);
  for (SoftSpec& soft : anatomy_.soft) JitterShape(&soft.shape, rng, 1.0f, 0.06f);

  // Image (centred, mm) -> reference anatomy of each pose group:
  //   q = S^-1 [Q^T (R^T (A p + c - t) - pivot) + pivot].
  const M3 a = anatomy_.image_to_joint;
  const M3 rt = Transpose(global);
  const V3 pivot{anatomy_.pivot.x * scale_ * axis_scale.x, anatomy_.pivot.y * scale_ * axis_scale.y,
                 anatomy_.pivot.z * scale_ * axis_scale.z};
  M3 s_inv;
  s_inv.m = {1.0f / (scale_ * axis_scale.x), 0, 0, 0, 1.0f / (scale_ * axis_scale.y), 0, 0, 0,
             1.0f / (scale_ * axis_scale.z)};
  std::array<M3, 3> q{};
  q[1] = Rotation(anatomy_.twist_axis, twist) *
         Rotation(anatomy_.pose_axis, anatomy_.pose_sign * pose_deg_);
  q[2] = Rotation(anatomy_.pose_axis, anatomy_.pose_sign * pose_deg_ * anatomy_.group2_pose_factor);
  // The field of view is centred on a point that scales with the child.
  const V3 fov{anatomy_.fov_center.x * scale_, anatomy_.fov_center.y * scale_,
               anatomy_.fov_center.z * scale_};
  for (int g = 0; g < 3; ++g) {
    const M3 qt = Transpose(q[g]);
    const M3 lin = s_inv * qt * rt * a;
    const V3 c = qt * (rt * (fov - shift) - pivot) + pivot;
    to_ref_[g] = {lin, s_inv * c};
  }

  // Textures and the displacement field.
  marrow_coarse_ = ValueNoise(rng.NextU64(), 9.0f);
  marrow_fine_ = ValueNoise(rng.NextU64(), 1.4f);
  muscle_septa_ = ValueNoise(rng.NextU64(), 17.0f);
  muscle_fine_ = ValueNoise(rng.NextU64(), 2.5f);
  fat_septa_ = ValueNoise(rng.NextU64(), 7.0f);
  spacing_ = spacing > 0 ? spacing
                         : std::round(100.0 * anatomy_.default_spacing_mm *
                                      std::clamp(0.55 + 0.45 * scale_, 0.8, 1.15)) /
                               100.0;
  half_fov_ = static_cast<float>(0.5 * size * spacing_);
  const float half_k =
      static_cast<float>(0.5 * slices * (options.slice_thickness_mm + options.slice_gap_mm));
  grid_origin_ = {-half_fov_ - 2 * grid_step_, -half_fov_ - 2 * grid_step_,
                  -half_k - 2 * grid_step_};
  grid_n_[0] = grid_n_[1] = static_cast<int>(2 * half_fov_ / grid_step_) + 5;
  grid_n_[2] = static_cast<int>(2 * half_k / grid_step_) + 5;
  BuildDeformation(rng);

  // Contrast: per-subject tissue jitter (scanner and subject variation) and, for fat-suppressed
  // contrasts, fat suppression that fails towards one edge of the field of view.
  PhantomRng acq(CombineSeeds(acquisition_seed_, Fingerprint("contrast")));
  for (int t = 1; t < kNumTissues; ++t) {
    contrast_.value[t] *= static_cast<float>(acq.ClippedNormal(1.0, 0.05));
  }
  contrast_.red_marrow *= static_cast<float>(acq.ClippedNormal(1.0, 0.05));
  contrast_.yellow_marrow *= static_cast<float>(acq.ClippedNormal(1.0, 0.05));
  const double fail_angle = acq.Uniform(0, 6.283185307179586);
  fs_fail_cx_ = static_cast<float>(std::cos(fail_angle));
  fs_fail_cy_ = static_cast<float>(std::sin(fail_angle));
  fs_fail_strength_ = contrast_.fat_suppressed && acq.Bernoulli(0.5)
                          ? static_cast<float>(acq.Uniform(0.2, 0.7))
                          : 0.0f;
}

void PhantomRenderer::JitterShape(Shape* shape, PhantomRng& rng, float center_sd, float radius_sd) {
  auto jitter_point = [&](V3* p) {
    p->x += static_cast<float>(rng.ClippedNormal(0, center_sd));
    p->y += static_cast<float>(rng.ClippedNormal(0, center_sd));
    p->z += static_cast<float>(rng.ClippedNormal(0, center_sd));
  };
  auto jitter_radius = [&](float* r) { *r *= static_cast<float>(rng.ClippedNormal(1, radius_sd)); };
  for (Primitive& p : shape->prims) {
    switch (p.kind) {
      case PrimKind::kEllipsoid:
        jitter_point(&p.a);
        jitter_radius(&p.r.x);
        jitter_radius(&p.r.y);
        jitter_radius(&p.r.z);
        break;
      case PrimKind::kRoundCone:
        jitter_point(&p.a);
        jitter_point(&p.b);
        jitter_radius(&p.ra);
        jitter_radius(&p.rb);
        break;
      case PrimKind::kTorus:
        jitter_point(&p.a);
        jitter_radius(&p.ra);
        jitter_radius(&p.rb);
        break;
      case PrimKind::kHalfSpace:
        jitter_point(&p.a);
        break;
    }
  }
}

void PhantomRenderer::BuildDeformation(PhantomRng& rng) {
  // A few random plane waves per displacement component: smooth, ~1.5-3 mm, 40-90 mm wavelength.
  struct Wave {
    V3 k;
    float amp, phase;
  };
  std::array<std::array<Wave, 3>, 3> waves{};
  for (auto& component : waves) {
    for (Wave& w : component) {
      V3 dir{static_cast<float>(rng.Normal()), static_cast<float>(rng.Normal()),
             static_cast<float>(rng.Normal())};
      if (phantom_internal::Length(dir) < 1e-3f) dir = {1, 0, 0};
      dir = phantom_internal::Normalized(dir);
      w.k = dir * (6.2831853f / static_cast<float>(rng.Uniform(40.0, 90.0)));
      w.amp = static_cast<float>(rng.Uniform(0.3, 1.0)) * scale_;
      w.phase = static_cast<float>(rng.Uniform(0, 6.2831853));
    }
  }
  grid_.resize(static_cast<size_t>(grid_n_[0]) * grid_n_[1] * grid_n_[2]);
  size_t idx = 0;
  for (int k = 0; k < grid_n_[2]; ++k) {
    for (int j = 0; j < grid_n_[1]; ++j) {
      for (int i = 0; i < grid_n_[0]; ++i) {
        const V3 p = grid_origin_ + V3{i * grid_step_, j * grid_step_, k * grid_step_};
        float d[3] = {0, 0, 0};
        for (int c = 0; c < 3; ++c) {
          for (const Wave& w : waves[c])
            d[c] += w.amp * std::sin(phantom_internal::Dot(w.k, p) + w.phase);
        }
        grid_[idx++] = {d[0], d[1], d[2]};
      }
    }
  }
}

V3 PhantomRenderer::Displacement(V3 p) const {
  const float inv = 1.0f / grid_step_;
  const float x = std::clamp((p.x - grid_origin_.x) * inv, 0.0f, grid_n_[0] - 1.001f);
  const float y = std::clamp((p.y - grid_origin_.y) * inv, 0.0f, grid_n_[1] - 1.001f);
  const float z = std::clamp((p.z - grid_origin_.z) * inv, 0.0f, grid_n_[2] - 1.001f);
  const int i = static_cast<int>(x), j = static_cast<int>(y), k = static_cast<int>(z);
  const float tx = x - i, ty = y - j, tz = z - k;
  const int nx = grid_n_[0], nxy = grid_n_[0] * grid_n_[1];
  const V3* g = &grid_[static_cast<size_t>(k) * nxy + static_cast<size_t>(j) * nx + i];
  auto lerp3 = [](V3 a, V3 b, float t) { return a + (b - a) * t; };
  const V3 c00 = lerp3(g[0], g[1], tx);
  const V3 c10 = lerp3(g[nx], g[nx + 1], tx);
  const V3 c01 = lerp3(g[nxy], g[nxy + 1], tx);
  const V3 c11 = lerp3(g[nxy + nx], g[nxy + nx + 1], tx);
  return lerp3(lerp3(c00, c10, ty), lerp3(c01, c11, ty), tz);
}

float PhantomRenderer::PhysisCoordinateMm(int bone, V3 q) const {
  const BoneSpec& b = anatomy_.bones[bone];
  const PhysisParams& pp = physis_[bone];
  const float u1 = phantom_internal::Dot(q, pp.e1);
  const float u2 = phantom_internal::Dot(q, pp.e2);
  const float wave = pp.amp * (0.75f * std::cos(pp.k1 * u1 + pp.phase1) +
                               0.25f * std::cos(pp.k2 * u2 + pp.phase2));
  return (phantom_internal::Dot(q - b.physis_point, b.physis_normal) - pp.offset) * sdf_scale_ -
         wave;
}

float PhantomRenderer::FatValue(V3 p) const {
  float fat = contrast_.value[static_cast<int>(Tissue::kFat)];
  if (fs_fail_strength_ > 0) {
    const float r = (p.x * fs_fail_cx_ + p.y * fs_fail_cy_) / half_fov_;
    fat += fs_fail_strength_ * SmoothStep(0.3f, 1.0f, r) * (0.85f - fat);
  }
  return fat;
}

PhantomRenderer::Sample PhantomRenderer::BoneSample(int bone, V3 q, float d_full, V3 p) const {
  const BoneSpec& b = anatomy_.bones[bone];
  const float cart = cartilage_mm_[bone];
  constexpr float kPeriosteumMm = 0.25f;
  const float sp = b.has_physis ? PhysisCoordinateMm(bone, q) : -1e6f;
  const float half_plate = 0.5f * physis_mm_;
  float t = cart;
  switch (b.cartilage) {
    case CartilageMode::kPhysisSplit:
      t = Lerp(kPeriosteumMm, cart, SmoothStep(half_plate, half_plate + 2.5f, sp));
      break;
    case CartilageMode::kUniform:
      break;
    case CartilageMode::kZone: {
      const float dist = phantom_internal::Length(q - b.zone_center) * sdf_scale_;
      const float zone = b.zone_radius * sdf_scale_;
      const float bare = Lerp(b.bare_young_mm, kPeriosteumMm, youth_);
      t = Lerp(cart, std::min(bare, cart), SmoothStep(zone, zone + 4.0f, dist));
      break;
    }
  }
  const float d_ossified = d_full + t;
  Sample s;
  auto value = [&](Tissue tissue) { return contrast_.value[static_cast<int>(tissue)]; };
  if (d_ossified >= 0) {
    s.tissue = Tissue::kCartilage;
    s.value = value(Tissue::kCartilage);
    return s;
  }
  s.label = static_cast<uint8_t>(b.label);
  if (b.has_physis && std::fabs(sp) < half_plate) {
    s.tissue = Tissue::kPhysis;
    // A fused plate leaves a thin dark scar line.
    s.value = physis_closed_ ? value(Tissue::kCortex) : value(Tissue::kPhysis);
    if (!physis_in_label_) s.label = 0;
    return s;
  }
  // Zone of provisional calcification: a dark line on the metaphyseal side of an open plate.
  if (b.has_physis && !physis_closed_ && sp < -half_plate && sp > -half_plate - 0.7f) {
    s.tissue = Tissue::kCortex;
    s.value = value(Tissue::kCortex);
    return s;
  }
  const float cortex =
      b.long_bone ? Lerp(0.9f, cortex_shaft_mm_, SmoothStep(8.0f, 45.0f, -sp)) : 0.8f;
  if (d_ossified > -cortex) {
    s.tissue = Tissue::kCortex;
    s.value = value(Tissue::kCortex);
    return s;
  }
  // Marrow: epiphyses turn fatty early; metaphyses keep red marrow through adolescence.
  const float years = Clamp01(static_cast<float>((age_ - 5.0) / 12.0));
  float fat;
  if (b.long_bone) {
    if (sp > 0) {
      fat = 0.72f + 0.18f * years;
    } else {
      const float meta = 0.12f + 0.42f * years;
      const float shaft = 0.30f + 0.48f * years;
      fat = Lerp(meta, shaft, SmoothStep(15.0f, 60.0f, -sp));
    }
  } else {
    fat = Lerp(b.marrow_fat_young, b.marrow_fat_old, years);
  }
  fat = Clamp01(fat + marrow_offset_ + 0.22f * marrow_coarse_(p.x, p.y, p.z));
  float yellow = contrast_.yellow_marrow;
  if (fs_fail_strength_ > 0) yellow += FatValue(p) - value(Tissue::kFat);
  const float marrow = Lerp(contrast_.red_marrow, yellow, fat);
  s.tissue = Tissue::kMarrow;
  s.value = marrow * (1.0f + 0.16f * marrow_fine_(p.x, p.y, p.z));
  return s;
}

PhantomRenderer::Sample PhantomRenderer::SoftSample(const std::array<V3, 3>& q, float d_env,
                                                    float d_bone, float d_bone2, V3 p,
                                                    const Tile& tile) const {
  Sample s;
  auto set = [&](Tissue tissue) {
    s.tissue = tissue;
    s.value = tissue == Tissue::kFat ? FatValue(p) : contrast_.value[static_cast<int>(tissue)];
  };
  const bool subcutaneous = d_env > 0;
  if (d_env > subcut_fat_mm_) {
    set(Tissue::kSkin);
    return s;
  }
  for (size_t i = 0; i < anatomy_.soft.size(); ++i) {
    const SoftSpec& soft = anatomy_.soft[i];
    if (tile.soft[i] == Reach::kFar) continue;
    if (subcutaneous && soft.tissue != Tissue::kFibrous && soft.tissue != Tissue::kVessel) continue;
    if (tile.soft[i] == Reach::kNear || soft.effusion_scaled) {
      const float d = soft.shape.Eval(q[soft.shape.group]) * sdf_scale_;
      if (d >= 0) continue;
      // A recess distends with effusion; without it, it is a collapsed potential space.
      if (soft.effusion_scaled && d + (1.0f - effusion_) * 5.0f >= 0) continue;
    }
    set(soft.tissue);
    // Fat pads are lobulated by thin fibrous septa too.
    if (soft.tissue == Tissue::kFat && std::fabs(fat_septa_(p.x, p.y, p.z)) < 0.02f) {
      s.value = Lerp(s.value, contrast_.value[static_cast<int>(Tissue::kFibrous)], 0.6f);
    }
    return s;
  }
  if (subcutaneous) {
    // Fibrous septa criss-cross subcutaneous fat.
    if (std::fabs(fat_septa_(p.x, p.y, p.z)) < 0.025f) {
      set(Tissue::kFibrous);
      s.value = Lerp(FatValue(p), s.value, 0.6f);
      return s;
    }
    set(Tissue::kFat);
    return s;
  }
  // Joint fluid lines the articular surfaces where two bones face each other.
  if (d_bone < fluid_layer_mm_ && d_bone2 < fluid_layer_mm_ + 6.0f && tile.capsule != Reach::kFar &&
      (tile.capsule == Reach::kInside || anatomy_.capsule.Eval(q[anatomy_.capsule.group]) < 0)) {
    set(Tissue::kFluid);
    return s;
  }
  // Muscle, with fat septa stretched along the limb's long axis.
  const V3 m = q[0];
  if (std::fabs(muscle_septa_(m.x, m.y, m.z * 0.25f)) < 0.022f) {
    set(Tissue::kFat);
    return s;
  }
  set(Tissue::kMuscle);
  s.value *= 1.0f + 0.05f * muscle_fine_(m.x, m.y, m.z * 0.4f);
  return s;
}

std::array<V3, 3> PhantomRenderer::ToReference(V3 p) const {
  std::array<V3, 3> q;
  for (int g = 0; g < anatomy_.num_groups; ++g) q[g] = to_ref_[g](p);
  for (int g = anatomy_.num_groups; g < 3; ++g) q[g] = q[0];
  return q;
}

void PhantomRenderer::PrepareTile(V3 centre, float radius_mm, Tile* tile) const {
  // The displacement field stretches distances by at most ~1.6x, tapered capsules are ~1.05-
  // Lipschitz, and blending moves surfaces by up to blend/4: the reach is padded for all three.
  const float reach = 2.0f * radius_mm + 1.0f;
  const std::array<V3, 3> q = ToReference(centre + Displacement(centre));
  // Far: the shape's distance exceeds `far_mm` at every point of the tile; inside: it is below
  // `inside_mm` everywhere. In between, points evaluate the shape themselves.
  auto classify = [&](const Shape& shape, float far_mm, float inside_mm, float* bound) {
    const float d = shape.EvalBound(q[shape.group]) * sdf_scale_;
    const float pad = 1.05f * reach + 0.25f * shape.MaxBlend() * sdf_scale_;
    if (d - pad > far_mm) {
      if (bound != nullptr) *bound = d - pad;
      return Reach::kFar;
    }
    if (d + pad < inside_mm) {
      if (bound != nullptr) *bound = d + pad;
      return Reach::kInside;
    }
    return Reach::kNear;
  };
  bool all_far = true;
  for (size_t i = 0; i < anatomy_.envelope.size(); ++i) {
    // Beyond the skin everything is air; inside the (offset) envelope is muscle and deeper.
    tile->envelope[i] =
        classify(anatomy_.envelope[i], subcut_fat_mm_ + skin_mm_ + envelope_offset_mm_,
                 std::min(envelope_offset_mm_, 0.0f), &tile->envelope_bound[i]);
    if (tile->envelope[i] != Reach::kFar) all_far = false;
  }
  tile->air = all_far;
  if (all_far) return;
  for (size_t i = 0; i < anatomy_.bones.size(); ++i) {
    // Bones need true distances within the carving and cartilage margin.
    tile->bone[i] =
        classify(anatomy_.bones[i].shape, kBoneMarginMm, -kBoneMarginMm, &tile->bone_bound[i]);
  }
  for (size_t i = 0; i < anatomy_.soft.size(); ++i) {
    tile->soft[i] = classify(anatomy_.soft[i].shape, 0.0f, 0.0f, nullptr);
  }
  tile->capsule = classify(anatomy_.capsule, 0.0f, 0.0f, nullptr);
}

void PhantomRenderer::PrepareExhaustiveTile(Tile* tile) const {
  tile->air = false;
  tile->envelope.fill(Reach::kNear);
  tile->bone.fill(Reach::kNear);
  tile->soft.fill(Reach::kNear);
  tile->capsule = Reach::kNear;
}

PhantomRenderer::Sample PhantomRenderer::Evaluate(V3 p_img, const Tile& tile) const {
  if (tile.air) return {};
  const V3 p = p_img + Displacement(p_img);
  const std::array<V3, 3> q = ToReference(p);

  float d_env = std::numeric_limits<float>::max();
  for (size_t i = 0; i < anatomy_.envelope.size(); ++i) {
    const Shape& e = anatomy_.envelope[i];
    const float d =
        tile.envelope[i] != Reach::kNear ? tile.envelope_bound[i] : e.Eval(q[e.group]) * sdf_scale_;
    d_env = std::min(d_env, d);
  }
  d_env -= envelope_offset_mm_;
  if (d_env > subcut_fat_mm_ + skin_mm_) return {};

  // Bones: full (cartilage-covered) shapes, then carved so that bones meeting at a joint keep a
  // joint space between them.
  const int n = static_cast<int>(anatomy_.bones.size());
  std::array<float, kMaxShapes> raw{};
  for (int b = 0; b < n; ++b) {
    const Shape& shape = anatomy_.bones[b].shape;
    raw[b] =
        tile.bone[b] != Reach::kNear ? tile.bone_bound[b] : shape.Eval(q[shape.group]) * sdf_scale_;
  }
  int best = -1;
  float d_best = std::numeric_limits<float>::max();
  float d_second = std::numeric_limits<float>::max();
  for (int b = 0; b < n; ++b) {
    float d = raw[b];
    if (d < kBoneMarginMm) {
      for (const BoneSpec::Yield& y : anatomy_.bones[b].yields) {
        d = phantom_internal::SMax(d, y.gap_mm - raw[y.bone], 1.0f);
      }
    }
    if (d < d_best) {
      d_second = d_best;
      d_best = d;
      best = b;
    } else if (d < d_second) {
      d_second = d;
    }
  }
  if (d_best < 0) {
    return BoneSample(best, q[anatomy_.bones[best].shape.group], d_best, p);
  }
  return SoftSample(q, d_env, d_best, d_second, p, tile);
}

// Majority vote over a slice's sub-samples; ties go to the sample nearest the slice centre.
uint8_t Vote(const uint8_t* samples, int n, size_t stride) {
  const int centre = n / 2;
  uint8_t best = samples[centre * stride];
  int best_count = 0;
  for (int a = 0; a < n; ++a) {
    if (samples[a * stride] == best) ++best_count;
  }
  for (int a = 0; a < n; ++a) {
    const uint8_t v = samples[a * stride];
    int count = 0;
    for (int b = 0; b < n; ++b) count += samples[b * stride] == v;
    if (count > best_count) {
      best = v;
      best_count = count;
    }
  }
  return best;
}

at::Tensor ToTensor(const std::vector<float>& data, int64_t k, int64_t j, int64_t i) {
  at::Tensor t = at::empty({k, j, i}, at::kFloat);
  std::memcpy(t.data_ptr<float>(), data.data(), data.size() * sizeof(float));
  return t;
}

at::Tensor ToTensor(const std::vector<uint8_t>& data, int64_t k, int64_t j, int64_t i) {
  at::Tensor t = at::empty({k, j, i}, at::kByte);
  std::memcpy(t.data_ptr<uint8_t>(), data.data(), data.size());
  return t;
}

}  // namespace

absl::Status ValidatePhantomOptions(const PhantomOptions& o) {
  if (!Contains(PhantomJoints(), o.joint)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown phantom joint '", o.joint,
                                                   "': valid joints are ",
                                                   absl::StrJoin(PhantomJoints(), ", ")));
  }
  if (!Contains(PhantomDomains(), o.domain)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown phantom domain '", o.domain,
                                                   "': valid domains (MR contrasts) are ",
                                                   absl::StrJoin(PhantomDomains(), ", ")));
  }
  auto bad = [](std::string_view field, std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("phantom option ", std::string(field), " ", std::string(what)));
  };
  if (o.in_plane_size != 0 && (o.in_plane_size < 16 || o.in_plane_size > 1024)) {
    return bad("in_plane_size",
               absl::StrCat("must be 0 (default) or in [16, 1024], got ", o.in_plane_size));
  }
  if (o.in_plane_spacing_mm != 0 &&
      !(o.in_plane_spacing_mm >= 0.05 && o.in_plane_spacing_mm <= 5.0)) {
    return bad("in_plane_spacing_mm",
               absl::StrCat("must be 0 (default) or in [0.05, 5] mm, got ", o.in_plane_spacing_mm));
  }
  if (o.num_slices != 0 && (o.num_slices < 1 || o.num_slices > 512)) {
    return bad("num_slices",
               absl::StrCat("must be 0 (default) or in [1, 512], got ", o.num_slices));
  }
  if (!(o.slice_thickness_mm >= 0.1 && o.slice_thickness_mm <= 10.0)) {
    return bad("slice_thickness_mm",
               absl::StrCat("must be in [0.1, 10] mm, got ", o.slice_thickness_mm));
  }
  if (!(o.slice_gap_mm >= 0.0 && o.slice_gap_mm <= 10.0)) {
    return bad("slice_gap_mm", absl::StrCat("must be in [0, 10] mm, got ", o.slice_gap_mm));
  }
  if (o.sub_slices < 1 || o.sub_slices > 16) {
    return bad("sub_slices", absl::StrCat("must be in [1, 16], got ", o.sub_slices));
  }
  if (!(o.min_age_years >= 2.0 && o.min_age_years <= o.max_age_years && o.max_age_years <= 20.0)) {
    return bad("min_age_years/max_age_years",
               absl::StrCat("must satisfy 2 <= min <= max <= 20, got ", o.min_age_years, " and ",
                            o.max_age_years));
  }
  if (!(o.noise_scale >= 0.0 && o.noise_scale <= 10.0)) {
    return bad("noise_scale", absl::StrCat("must be in [0, 10], got ", o.noise_scale));
  }
  if (!(o.bias_scale >= 0.0 && o.bias_scale <= 10.0)) {
    return bad("bias_scale", absl::StrCat("must be in [0, 10], got ", o.bias_scale));
  }
  if (o.first_subject < 0) {
    return bad("first_subject", absl::StrCat("must be >= 0, got ", o.first_subject));
  }
  if (o.labeled_subjects < -1) {
    return bad("labeled_subjects",
               absl::StrCat("must be -1 (all) or >= 0, got ", o.labeled_subjects));
  }
  return absl::OkStatus();
}

absl::StatusOr<PhantomSubject> GeneratePhantom(const PhantomOptions& options, int subject) {
  return phantom_internal::GeneratePhantomImpl(options, subject, /*use_tiles=*/true);
}

absl::StatusOr<PhantomSubject> phantom_internal::GeneratePhantomImpl(const PhantomOptions& options,
                                                                     int subject, bool use_tiles) {
  if (absl::Status status = ValidatePhantomOptions(options); !status.ok()) return status;
  if (subject < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("phantom subject index must be >= 0, got ", subject));
  }
  const JointAnatomy reference = phantom_internal::ReferenceAnatomy(options.joint);
  constexpr size_t kMax = PhantomRenderer::kMaxShapes;
  if (reference.bones.size() > kMax || reference.soft.size() > kMax ||
      reference.envelope.size() > kMax) {
    return absl::InternalError(absl::StrCat("phantom anatomy of '", options.joint,
                                            "' has more shapes than the renderer's limit ", kMax));
  }
  const int64_t size = options.in_plane_size ? options.in_plane_size : reference.default_size;
  const double requested_spacing = options.in_plane_spacing_mm;
  const int64_t slices = options.num_slices ? options.num_slices : reference.default_slices;
  const int sub = options.sub_slices;
  const double slice_step = options.slice_thickness_mm + options.slice_gap_mm;

  PhantomRenderer renderer(options, subject, reference, ContrastFor(options.domain), size,
                           requested_spacing, slices);
  const double spacing = renderer.spacing();

  const size_t plane = static_cast<size_t>(size * size);
  const size_t voxels = plane * static_cast<size_t>(slices);
  std::vector<float> image(voxels, 0.0f);
  std::vector<uint8_t> labels(voxels, 0);
  std::vector<uint8_t> tissues(voxels, 0);
  std::vector<uint8_t> sub_labels(plane * sub);
  std::vector<uint8_t> sub_tissues(plane * sub);
  const float centre = 0.5f * static_cast<float>(size - 1);
  const float inv_sub = 1.0f / static_cast<float>(sub);
  PhantomRenderer::Tile tile;
  for (int64_t k = 0; k < slices; ++k) {
    float* out = &image[static_cast<size_t>(k) * plane];
    const double slice_centre = (static_cast<double>(k) - 0.5 * (slices - 1)) * slice_step;
    for (int m = 0; m < sub; ++m) {
      const float w = static_cast<float>(slice_centre - 0.5 * options.slice_thickness_mm +
                                         (m + 0.5) * options.slice_thickness_mm / sub);
      // Tiles of kTile x kTile pixels share one decision about which shapes can matter.
      constexpr int64_t kTile = 8;
      for (int64_t j0 = 0; j0 < size; j0 += kTile) {
        for (int64_t i0 = 0; i0 < size; i0 += kTile) {
          const int64_t j1 = std::min(j0 + kTile, size);
          const int64_t i1 = std::min(i0 + kTile, size);
          const float cj = 0.5f * static_cast<float>(j0 + j1 - 1);
          const float ci = 0.5f * static_cast<float>(i0 + i1 - 1);
          const float radius =
              0.5f * static_cast<float>(kTile) * static_cast<float>(spacing) * 1.4143f;
          if (use_tiles) {
            renderer.PrepareTile({(ci - centre) * static_cast<float>(spacing),
                                  (cj - centre) * static_cast<float>(spacing), w},
                                 radius, &tile);
          } else {
            renderer.PrepareExhaustiveTile(&tile);
          }
          for (int64_t j = j0; j < j1; ++j) {
            const float v = (static_cast<float>(j) - centre) * static_cast<float>(spacing);
            for (int64_t i = i0; i < i1; ++i) {
              const float u = (static_cast<float>(i) - centre) * static_cast<float>(spacing);
              const PhantomRenderer::Sample s = renderer.Evaluate({u, v, w}, tile);
              const size_t at = static_cast<size_t>(j * size + i);
              out[at] += s.value * inv_sub;
              sub_labels[m * plane + at] = s.label;
              sub_tissues[m * plane + at] = static_cast<uint8_t>(s.tissue);
            }
          }
        }
      }
    }
    for (size_t at = 0; at < plane; ++at) {
      labels[static_cast<size_t>(k) * plane + at] = Vote(&sub_labels[at], sub, plane);
      tissues[static_cast<size_t>(k) * plane + at] = Vote(&sub_tissues[at], sub, plane);
    }
  }

  // In-plane point spread: a [1 2 1]/4 blur along i and j (finite k-space sampling).
  {
    std::vector<float> tmp(plane);
    for (int64_t k = 0; k < slices; ++k) {
      float* s = &image[static_cast<size_t>(k) * plane];
      for (int64_t j = 0; j < size; ++j) {
        for (int64_t i = 0; i < size; ++i) {
          const float l = s[j * size + std::max<int64_t>(i - 1, 0)];
          const float r = s[j * size + std::min<int64_t>(i + 1, size - 1)];
          tmp[j * size + i] = 0.25f * l + 0.5f * s[j * size + i] + 0.25f * r;
        }
      }
      for (int64_t j = 0; j < size; ++j) {
        const float* up = &tmp[std::max<int64_t>(j - 1, 0) * size];
        const float* mid = &tmp[j * size];
        const float* down = &tmp[std::min<int64_t>(j + 1, size - 1) * size];
        for (int64_t i = 0; i < size; ++i) {
          s[j * size + i] = 0.25f * up[i] + 0.5f * mid[i] + 0.25f * down[i];
        }
      }
    }
  }

  // Smooth multiplicative bias (coil sensitivity), scanner gain, then Rician noise: the magnitude
  // of the complex signal with Gaussian noise in both channels.
  PhantomRng acq(CombineSeeds(renderer.acquisition_seed(), Fingerprint("bias-noise")));
  std::array<double, 9> bias{};
  const double sds[9] = {0.20, 0.20, 0.12, 0.10, 0.10, 0.06, 0.06, 0.05, 0.05};
  for (int c = 0; c < 9; ++c) bias[c] = acq.Normal() * sds[c] * options.bias_scale;
  const double gain = acq.Uniform(600.0, 1400.0);
  const double sigma_rel = acq.Uniform(0.018, 0.04) * options.noise_scale;
  const double sigma = sigma_rel * gain;
  PhantomRng noise(CombineSeeds(renderer.acquisition_seed(), Fingerprint("rician")));
  const double half_fov = 0.5 * size * spacing;
  const double half_k = std::max(0.5 * slices * slice_step, 1e-6);
  for (int64_t k = 0; k < slices; ++k) {
    const double z = ((static_cast<double>(k) - 0.5 * (slices - 1)) * slice_step) / half_k;
    for (int64_t j = 0; j < size; ++j) {
      const double y = (static_cast<double>(j) - centre) * spacing / half_fov;
      for (int64_t i = 0; i < size; ++i) {
        const double x = (static_cast<double>(i) - centre) * spacing / half_fov;
        const double poly = bias[0] * x + bias[1] * y + bias[2] * z + bias[3] * x * x +
                            bias[4] * y * y + bias[5] * z * z + bias[6] * x * y + bias[7] * x * z +
                            bias[8] * y * z;
        const size_t at = static_cast<size_t>(k) * plane + static_cast<size_t>(j * size + i);
        const double signal = image[at] * std::exp(poly) * gain;
        double n1 = 0, n2 = 0;
        noise.NormalPair(&n1, &n2);
        const double re = signal + sigma * n1;
        const double im = sigma * n2;
        image[at] = static_cast<float>(std::sqrt(re * re + im * im));
      }
    }
  }

  PhantomSubject result;
  result.subject = subject;
  result.id = PhantomSubjectId(options.joint, options.domain, subject);
  Geometry geometry;
  geometry.size = {size, size, slices};
  geometry.spacing = {spacing, spacing, slice_step};
  geometry.direction = reference.direction;
  for (int r = 0; r < 3; ++r) {
    double o = 0;
    for (int c = 0; c < 3; ++c) {
      o -= geometry.direction[r * 3 + c] * geometry.spacing[c] * 0.5 *
           static_cast<double>(geometry.size[c] - 1);
    }
    geometry.origin[r] = o;
  }
  result.image = {ToTensor(image, slices, size, size), geometry};
  result.label = {ToTensor(labels, slices, size, size), geometry};
  result.tissue = {ToTensor(tissues, slices, size, size), geometry};
  result.age_years = renderer.age();
  result.sex = renderer.female() ? "female" : "male";
  result.scale = renderer.scale();
  result.pose_deg = renderer.pose_deg();
  result.noise_sigma = sigma;
  result.physis_closed = renderer.physis_closed();
  return result;
}

}  // namespace fedjoint::common::data
