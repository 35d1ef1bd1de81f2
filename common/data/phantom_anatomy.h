// Internal to the phantom generator: implicit-shape geometry and the reference anatomy of each
// joint. Distances are signed (negative inside), in the reference child's millimetres.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/phantom.h"

namespace fedjoint::common::data::phantom_internal {

struct V3 {
  float x = 0, y = 0, z = 0;
};
inline V3 operator+(V3 a, V3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
inline V3 operator-(V3 a, V3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
inline V3 operator*(V3 a, float s) { return {a.x * s, a.y * s, a.z * s}; }
inline float Dot(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline float Length(V3 a) { return std::sqrt(Dot(a, a)); }
inline V3 Normalized(V3 a) { return a * (1.0f / Length(a)); }

// Row-major 3x3 matrix.
struct M3 {
  std::array<float, 9> m{1, 0, 0, 0, 1, 0, 0, 0, 1};
  V3 operator*(V3 v) const {
    return {m[0] * v.x + m[1] * v.y + m[2] * v.z, m[3] * v.x + m[4] * v.y + m[5] * v.z,
            m[6] * v.x + m[7] * v.y + m[8] * v.z};
  }
};
M3 operator*(const M3& a, const M3& b);
M3 Transpose(const M3& a);
// Rotation by `deg` degrees about the unit axis x (0), y (1) or z (2).
M3 Rotation(int axis, float deg);

// Affine map q = m * p + t.
struct Affine {
  M3 m;
  V3 t;
  V3 operator()(V3 p) const { return m * p + t; }
};

// Polynomial smooth minimum / maximum with blend radius k (k <= 0: plain min / max).
inline float SMin(float a, float b, float k) {
  if (k <= 0) return std::min(a, b);
  const float h = std::max(k - std::fabs(a - b), 0.0f) / k;
  return std::min(a, b) - h * h * k * 0.25f;
}
inline float SMax(float a, float b, float k) { return -SMin(-a, -b, k); }

enum class PrimKind : uint8_t { kEllipsoid, kRoundCone, kHalfSpace, kTorus };
enum class PrimOp : uint8_t { kUnion, kSubtract, kIntersect };

struct Primitive {
  PrimKind kind = PrimKind::kEllipsoid;
  PrimOp op = PrimOp::kUnion;
  float blend = 0;  // smooth-union/subtraction radius with what came before
  // Ellipsoid: centre a, semi-axes r, orientation rot (local = rot^T (p - a)).
  // RoundCone: segment a -> b with radii ra -> rb; cross-section stretched by r (x, y, z scale
  // about a, 1 = round).
  // HalfSpace: point a, outward unit normal r (inside where (p - a)·r < 0).
  // Torus: centre a, unit axis r, ring radius ra, tube radii rb (radial) and b.x (axial).
  V3 a, b, r;
  float ra = 0, rb = 0;
  M3 rot;
  bool rotated = false;

  float Eval(V3 p) const;
  // A 1-Lipschitz function with the sign of Eval whose magnitude never exceeds the true
  // distance (Eval's ellipsoid formula is accurate near the surface but can overestimate far
  // from it). Used to decide safely which shapes can matter for a whole tile.
  float EvalBound(V3 p) const;
};

Primitive Ellipsoid(V3 c, V3 r, float blend = 0);
// Ellipsoid rotated by `deg` about axis (0 x, 1 y, 2 z).
Primitive EllipsoidRot(V3 c, V3 r, int axis, float deg, float blend = 0);
Primitive RoundCone(V3 a, V3 b, float ra, float rb, float blend = 0);
// A tapered capsule with an elliptical cross-section: `stretch` scales it about `a` per axis.
Primitive FlatCone(V3 a, V3 b, float ra, float rb, V3 stretch, float blend = 0);
Primitive HalfSpace(V3 point, V3 outward_normal, float blend = 0);
Primitive Torus(V3 c, V3 axis, float ring_radius, float tube_radial, float tube_axial,
                float blend = 0);
Primitive Subtract(Primitive p);
Primitive Intersect(Primitive p);

// A solid made by applying primitives in order, attached to one pose group (its frame moves with
// that group: femur vs tibia, foot vs leg, scapula vs humerus).
struct Shape {
  std::vector<Primitive> prims;
  int group = 0;

  float Eval(V3 p) const;
  float EvalBound(V3 p) const;
  // The largest blend radius: blending can move the surface by up to a quarter of it.
  float MaxBlend() const;
};

enum class CartilageMode : uint8_t {
  kPhysisSplit,  // thick cartilage on the epiphysis side of the physis, none on the shaft
  kUniform,      // small bones ossifying from a centre: cartilage all around
  kZone,         // cartilage only within `zone_radius` of `zone_center` (e.g. the glenoid)
};

struct BoneSpec {
  std::string name;
  int label = 0;  // 0: rendered as bone but not labelled (e.g. the ankle's fibula)
  Shape shape;
  bool has_physis = false;
  V3 physis_point;            // on the growth plate
  V3 physis_normal{0, 0, 1};  // unit, pointing to the epiphysis
  float undulation_mm = 1.5;  // growth plate waviness
  bool long_bone = false;     // thick diaphyseal cortex away from the physis
  CartilageMode cartilage = CartilageMode::kUniform;
  float cartilage_young_mm = 4.0;  // cartilage thickness at age 5 ...
  float cartilage_old_mm = 1.5;    // ... and from age 15
  V3 zone_center;
  float zone_radius = 0;
  // kZone: cartilage outside the zone at age 5 (thinning to a periosteum-thin layer by 15).
  float bare_young_mm = 0.25f;
  float marrow_fat_young = 0.5;  // fatty fraction of (non-metaphyseal) marrow at age 5 ...
  float marrow_fat_old = 0.8;    // ... and at 17
  // Bones this one gives way to at a joint: inside it only where at least `gap` mm outside them.
  struct Yield {
    int bone = 0;
    float gap_mm = 0.6f;
  };
  std::vector<Yield> yields;
};

struct SoftSpec {
  Shape shape;
  PhantomTissue tissue = PhantomTissue::kMuscle;
  bool effusion_scaled = false;  // a fluid recess: shrinks to nothing without effusion
};

struct JointAnatomy {
  std::vector<std::string> label_names;  // label order
  std::vector<BoneSpec> bones;
  // Muscle envelope (fascia): skin and subcutaneous fat lie outside it.
  std::vector<Shape> envelope;
  // Soft structures in priority order: the first one containing a point wins.
  std::vector<SoftSpec> soft;
  Shape capsule;  // joint capsule: fluid lines the cartilage inside it
  int num_groups = 1;
  // Group 1 (and 2) rotate relative to group 0 about `pivot` around `pose_axis` by the pose angle
  // (times `group2_pose_factor` for group 2, e.g. the patella following the tibia part-way).
  V3 pivot;
  int pose_axis = 0;
  float pose_min_deg = 0, pose_max_deg = 0;
  float pose_sign = 1;  // maps the reported pose angle to a rotation about +pose_axis
  // Axial rotation of group 1 about `twist_axis` through the pivot, uniform in ±twist_max_deg.
  int twist_axis = 2;
  float twist_max_deg = 0;
  float group2_pose_factor = 0.5f;
  V3 group2_offset_per_deg;  // extra translation of group 2 per degree (patella glides down)
  // Image axes (i, j, k) expressed in the joint frame (x lateral, y posterior, z superior).
  M3 image_to_joint;
  // LPS direction matrix (columns = physical directions of i, j, k) of the written volume.
  std::array<double, 9> direction{};
  V3 fov_center;  // joint-frame point at the centre of the field of view
  int64_t default_size = 160;
  double default_spacing_mm = 0.75;
  int64_t default_slices = 28;
};

// The reference (12-13 year old, un-jittered) anatomy of a joint: "ankle", "knee" or "shoulder".
JointAnatomy ReferenceAnatomy(std::string_view joint);

// GeneratePhantom, optionally without the per-tile culling of shapes: tests check that culling
// changes no voxel.
absl::StatusOr<PhantomSubject> GeneratePhantomImpl(const PhantomOptions& options, int subject,
                                                   bool use_tiles);

}  // namespace fedjoint::common::data::phantom_internal
