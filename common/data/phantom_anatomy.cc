#include "common/data/phantom_anatomy.h"

#include <algorithm>
#include <initializer_list>
#include <limits>

namespace fedjoint::common::data::phantom_internal {

M3 operator*(const M3& a, const M3& b) {
  M3 c;
  for (int r = 0; r < 3; ++r) {
    for (int col = 0; col < 3; ++col) {
      float s = 0;
      for (int k = 0; k < 3; ++k) s += a.m[r * 3 + k] * b.m[k * 3 + col];
      c.m[r * 3 + col] = s;
    }
  }
  return c;
}

M3 Transpose(const M3& a) {
  M3 t;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) t.m[r * 3 + c] = a.m[c * 3 + r];
  }
  return t;
}

M3 Rotation(int axis, float deg) {
  const float rad = deg * 0.017453292519943295f;
  const float c = std::cos(rad);
  const float s = std::sin(rad);
  M3 r;
  switch (axis) {
    case 0:
      r.m = {1, 0, 0, 0, c, -s, 0, s, c};
      break;
    case 1:
      r.m = {c, 0, s, 0, 1, 0, -s, 0, c};
      break;
    default:
      r.m = {c, -s, 0, s, c, 0, 0, 0, 1};
      break;
  }
  return r;
}

float Primitive::Eval(V3 p) const {
  switch (kind) {
    case PrimKind::kEllipsoid: {
      V3 q = p - a;
      if (rotated) q = Transpose(rot) * q;
      const V3 q0{q.x / r.x, q.y / r.y, q.z / r.z};
      const V3 q1{q0.x / r.x, q0.y / r.y, q0.z / r.z};
      const float k0 = Length(q0);
      const float k1 = Length(q1);
      if (k1 < 1e-6f) return -std::min(r.x, std::min(r.y, r.z));
      return k0 * (k0 - 1.0f) / k1;
    }
    case PrimKind::kRoundCone: {
      V3 ba = b - a;
      V3 pa = p - a;
      const bool stretched = r.x != 1.0f || r.y != 1.0f || r.z != 1.0f;
      if (stretched) {
        ba = {ba.x / r.x, ba.y / r.y, ba.z / r.z};
        pa = {pa.x / r.x, pa.y / r.y, pa.z / r.z};
      }
      float t = Dot(pa, ba) / Dot(ba, ba);
      t = std::clamp(t, 0.0f, 1.0f);
      const float d = Length(pa - ba * t) - (ra + (rb - ra) * t);
      return stretched ? d * std::min(r.x, std::min(r.y, r.z)) : d;
    }
    case PrimKind::kHalfSpace:
      return Dot(p - a, r);
    case PrimKind::kTorus: {
      const V3 d = p - a;
      const float h = Dot(d, r);
      const float rho = Length(d - r * h);
      const float qx = (rho - ra) / rb;
      const float qy = h / b.x;
      return (std::sqrt(qx * qx + qy * qy) - 1.0f) * std::min(rb, b.x);
    }
  }
  return std::numeric_limits<float>::max();
}

float Primitive::EvalBound(V3 p) const {
  if (kind != PrimKind::kEllipsoid) return Eval(p);
  V3 q = p - a;
  if (rotated) q = Transpose(rot) * q;
  const float k0 = Length(V3{q.x / r.x, q.y / r.y, q.z / r.z});
  // Scaling by 1/r shrinks distances by at most 1/min(r): |k0 - 1| * min(r) <= true distance.
  const float scaled = (k0 - 1.0f) * std::min(r.x, std::min(r.y, r.z));
  if (k0 < 1.0f) return scaled;
  // Outside, the distance to the bounding box is a tighter bound for thin ellipsoids; both are
  // 1-Lipschitz and zero on the surface, so their maximum is too.
  const V3 out{std::max(std::fabs(q.x) - r.x, 0.0f), std::max(std::fabs(q.y) - r.y, 0.0f),
               std::max(std::fabs(q.z) - r.z, 0.0f)};
  return std::max(scaled, Length(out));
}

Primitive Ellipsoid(V3 c, V3 r, float blend) {
  Primitive p;
  p.kind = PrimKind::kEllipsoid;
  p.a = c;
  p.r = r;
  p.blend = blend;
  return p;
}

Primitive EllipsoidRot(V3 c, V3 r, int axis, float deg, float blend) {
  Primitive p = Ellipsoid(c, r, blend);
  p.rot = Rotation(axis, deg);
  p.rotated = true;
  return p;
}

Primitive RoundCone(V3 a, V3 b, float ra, float rb, float blend) {
  Primitive p;
  p.kind = PrimKind::kRoundCone;
  p.a = a;
  p.b = b;
  p.ra = ra;
  p.rb = rb;
  p.r = {1, 1, 1};
  p.blend = blend;
  return p;
}

Primitive FlatCone(V3 a, V3 b, float ra, float rb, V3 stretch, float blend) {
  Primitive p = RoundCone(a, b, ra, rb, blend);
  p.r = stretch;
  return p;
}

Primitive HalfSpace(V3 point, V3 outward_normal, float blend) {
  Primitive p;
  p.kind = PrimKind::kHalfSpace;
  p.a = point;
  p.r = Normalized(outward_normal);
  p.blend = blend;
  return p;
}

Primitive Torus(V3 c, V3 axis, float ring_radius, float tube_radial, float tube_axial,
                float blend) {
  Primitive p;
  p.kind = PrimKind::kTorus;
  p.a = c;
  p.r = Normalized(axis);
  p.ra = ring_radius;
  p.rb = tube_radial;
  p.b = {tube_axial, 0, 0};
  p.blend = blend;
  return p;
}

Primitive Subtract(Primitive p) {
  p.op = PrimOp::kSubtract;
  return p;
}

Primitive Intersect(Primitive p) {
  p.op = PrimOp::kIntersect;
  return p;
}

float Shape::Eval(V3 p) const {
  float d = std::numeric_limits<float>::max();
  for (const Primitive& prim : prims) {
    const float e = prim.Eval(p);
    switch (prim.op) {
      case PrimOp::kUnion:
        d = SMin(d, e, prim.blend);
        break;
      case PrimOp::kSubtract:
        d = SMax(d, -e, prim.blend);
        break;
      case PrimOp::kIntersect:
        d = SMax(d, e, prim.blend);
        break;
    }
  }
  return d;
}

float Shape::EvalBound(V3 p) const {
  float d = std::numeric_limits<float>::max();
  for (const Primitive& prim : prims) {
    const float e = prim.EvalBound(p);
    switch (prim.op) {
      case PrimOp::kUnion:
        d = SMin(d, e, prim.blend);
        break;
      case PrimOp::kSubtract:
        d = SMax(d, -e, prim.blend);
        break;
      case PrimOp::kIntersect:
        d = SMax(d, e, prim.blend);
        break;
    }
  }
  return d;
}

float Shape::MaxBlend() const {
  float m = 0;
  for (const Primitive& prim : prims) m = std::max(m, prim.blend);
  return m;
}

namespace {

Shape MakeShape(int group, std::initializer_list<Primitive> prims) {
  Shape s;
  s.group = group;
  s.prims = prims;
  return s;
}

SoftSpec Soft(PhantomTissue tissue, Shape shape, bool effusion_scaled = false) {
  SoftSpec s;
  s.tissue = tissue;
  s.shape = std::move(shape);
  s.effusion_scaled = effusion_scaled;
  return s;
}

// Sagittal acquisition (knee, ankle): i runs anterior->posterior, j superior->inferior,
// k left->right. For a right joint the joint frame's x (lateral) is the patient's right.
void SetSagittal(JointAnatomy* a) {
  a->image_to_joint.m = {0, 0, 1, 1, 0, 0, 0, -1, 0};
  a->direction = {0, 0, -1, 1, 0, 0, 0, -1, 0};
}

// Coronal-oblique acquisition (shoulder): i runs right->left (lateral->medial for a right
// shoulder), j superior->inferior, k anterior->posterior.
void SetCoronal(JointAnatomy* a) {
  a->image_to_joint.m = {-1, 0, 0, 0, 0, 1, 0, -1, 0};
  a->direction = {1, 0, 0, 0, 0, 1, 0, -1, 0};
}

using T = PhantomTissue;

JointAnatomy Knee() {
  JointAnatomy a;
  a.label_names = {"femur", "tibia", "patella", "fibula"};
  a.num_groups = 3;  // 0 femur and thigh, 1 tibia, fibula and leg, 2 patella
  a.pivot = {0, 8, 21};
  a.pose_axis = 0;
  a.pose_min_deg = 0;
  a.pose_max_deg = 30;
  a.pose_sign = 1;
  a.twist_axis = 2;
  a.twist_max_deg = 6;
  a.group2_pose_factor = 0.55f;
  SetSagittal(&a);
  a.fov_center = {0, 6, 12};
  a.default_size = 176;
  a.default_spacing_mm = 0.8;
  a.default_slices = 28;

  BoneSpec femur;
  femur.name = "femur";
  femur.label = 1;
  femur.shape = MakeShape(
      0, {
             FlatCone({0, -3, 42}, {0, -6, 170}, 13, 11.5f, {1, 0.9f, 1}),
             Ellipsoid({0, 1, 33}, {30, 19, 19}, 10),                    // distal metaphyseal flare
             Ellipsoid({-17, 8, 21}, {13, 22, 20}, 7),                   // medial condyle
             Ellipsoid({17, 6, 22}, {13, 21, 20}, 7),                    // lateral condyle
             Ellipsoid({0, -6, 26}, {27, 14, 17}, 7),                    // trochlea
             Subtract(RoundCone({0, -26, 8}, {0, -24, 44}, 10, 10, 3)),  // trochlear groove
             Subtract(Ellipsoid({0, 19, 6}, {8.5f, 17, 15}, 2)),         // intercondylar notch
         });
  femur.has_physis = true;
  femur.physis_point = {0, 0, 28};
  femur.physis_normal = {0, 0, -1};
  femur.undulation_mm = 2.0f;
  femur.long_bone = true;
  femur.cartilage = CartilageMode::kPhysisSplit;
  femur.cartilage_young_mm = 6.5f;
  femur.cartilage_old_mm = 2.2f;

  BoneSpec tibia;
  tibia.name = "tibia";
  tibia.label = 2;
  tibia.shape = MakeShape(
      1, {
             Ellipsoid({0, 5, -6}, {36, 24, 16}),
             Intersect(HalfSpace({0, 0, -1.5f}, {0, 0.12f, 1}, 3)),  // plateau, sloping posteriorly
             Ellipsoid({0, 3, -3}, {5, 9, 4.5f}, 2),                 // tibial spines
             FlatCone({0, 4, -18}, {0, 2, -58}, 26, 14, {1, 0.75f, 1}, 7),   // metaphysis
             FlatCone({0, 2, -58}, {0, 3, -180}, 14, 12, {1, 0.85f, 1}, 4),  // shaft
             Ellipsoid({0, -17, -36}, {10, 8, 14}, 6),                       // tibial tuberosity
         });
  tibia.has_physis = true;
  tibia.physis_point = {0, 0, -20};
  tibia.physis_normal = Normalized({0, 0.18f, 1});
  tibia.undulation_mm = 1.5f;
  tibia.long_bone = true;
  tibia.cartilage = CartilageMode::kPhysisSplit;
  tibia.cartilage_young_mm = 5.5f;
  tibia.cartilage_old_mm = 2.0f;
  tibia.yields = {{0, 0.6f}};

  BoneSpec patella;
  patella.name = "patella";
  patella.label = 3;
  patella.shape = MakeShape(2, {
                                   Ellipsoid({0, -31, 32}, {19, 9.5f, 18}),
                                   Ellipsoid({0, -24, 32}, {6, 4, 12}, 4),  // median ridge
                               });
  // Cartilage on the articular (posterior) surface; the anterior surface is under the tendon.
  patella.cartilage = CartilageMode::kZone;
  patella.zone_center = {0, -16, 32};
  patella.zone_radius = 18;
  patella.bare_young_mm = 3.0f;  // a young patella is a small nucleus inside its cartilage
  patella.cartilage_young_mm = 3.6f;
  patella.cartilage_old_mm = 1.8f;
  patella.marrow_fat_young = 0.55f;
  patella.marrow_fat_old = 0.85f;
  patella.yields = {{0, 0.6f}};

  BoneSpec fibula;
  fibula.name = "fibula";
  fibula.label = 4;
  fibula.shape = MakeShape(1, {
                                  Ellipsoid({31, 20, -28}, {10, 10, 11}),
                                  Ellipsoid({31, 23, -19}, {4, 4, 4}, 3),  // styloid
                                  RoundCone({31, 20, -32}, {29, 17, -180}, 7, 6, 5),
                              });
  fibula.has_physis = true;
  fibula.physis_point = {31, 20, -31};
  fibula.physis_normal = {0, 0, 1};
  fibula.undulation_mm = 0.8f;
  fibula.long_bone = true;
  fibula.cartilage = CartilageMode::kPhysisSplit;
  fibula.cartilage_young_mm = 3.5f;
  fibula.cartilage_old_mm = 1.2f;
  fibula.yields = {{1, 0.8f}};

  a.bones = {femur, tibia, patella, fibula};

  a.envelope = {
      MakeShape(0, {RoundCone({0, 8, 14}, {0, 4, 200}, 47, 56)}),  // thigh
      MakeShape(1, {RoundCone({0, 9, 14}, {0, 12, -200}, 45, 40),  // leg
                    Ellipsoid({0, 30, -95}, {42, 32, 70}, 12)}),   // calf muscles
  };
  a.soft = {
      // Tendons and ligaments.
      Soft(T::kFibrous, MakeShape(0, {EllipsoidRot({0, -36, 74}, {15, 3.5f, 26}, 0, -7)})),
      Soft(T::kFibrous, MakeShape(1, {EllipsoidRot({0, -32, -11}, {13, 3.2f, 27}, 0, 12)})),
      Soft(T::kFibrous, MakeShape(0, {RoundCone({9, 17, 16}, {2, -3, -2}, 3.5f, 3.5f)})),  // ACL
      Soft(T::kFibrous, MakeShape(0, {RoundCone({-8, 5, 17}, {-1, 25, -11}, 4.5f, 4)})),   // PCL
      Soft(T::kFibrous, MakeShape(1, {Torus({-17, 6, -1.5f}, {0, 0, 1}, 15, 5, 3.2f)})),  // menisci
      Soft(T::kFibrous, MakeShape(1, {Torus({17, 5, -1.5f}, {0, 0, 1}, 13, 5, 3.2f)})),
      // Popliteal vessels.
      Soft(T::kVessel, MakeShape(0, {RoundCone({-2, 40, 120}, {0, 35, -100}, 3, 3)})),
      Soft(T::kVessel, MakeShape(0, {RoundCone({3, 46, 120}, {3, 41, -100}, 4, 4)})),
      // Suprapatellar recess (fluid only with an effusion).
      Soft(T::kFluid, MakeShape(0, {Ellipsoid({0, -22, 50}, {22, 2.5f, 17})}), true),
      // Fat pads: Hoffa's, quadriceps, prefemoral, popliteal.
      Soft(T::kFat, MakeShape(1, {Ellipsoid({0, -22, -4}, {22, 10, 12})})),
      Soft(T::kFat, MakeShape(0, {Ellipsoid({0, -28, 46}, {20, 4, 10})})),
      Soft(T::kFat, MakeShape(0, {Ellipsoid({0, -17, 56}, {22, 4, 14})})),
      Soft(T::kFat, MakeShape(0, {Ellipsoid({0, 38, 8}, {14, 10, 34})})),
  };
  a.capsule = MakeShape(0, {Ellipsoid({0, 4, 12}, {44, 34, 36})});
  return a;
}

JointAnatomy Ankle() {
  JointAnatomy a;
  // Label order as in common/model/joint_spec.cc (DefaultJoints) and METHODS.md.
  a.label_names = {"calcaneus", "talus", "tibia"};
  a.num_groups = 2;  // 0 leg (tibia, fibula), 1 foot
  a.pivot = {0, 2, -17.5f};
  a.pose_axis = 0;
  a.pose_min_deg = -10;  // dorsiflexion
  a.pose_max_deg = 25;   // plantarflexion
  a.pose_sign = 1;
  a.twist_axis = 1;
  a.twist_max_deg = 6;
  SetSagittal(&a);
  a.fov_center = {0, -2, -18};
  a.default_size = 176;
  a.default_spacing_mm = 0.8;
  a.default_slices = 26;

  BoneSpec tibia;
  tibia.name = "tibia";
  tibia.label = 3;
  tibia.shape =
      MakeShape(0, {
                       RoundCone({0, 0, 42}, {0, 1, 180}, 12, 11),
                       Ellipsoid({0, 0, 15}, {21, 17, 20}, 8),          // metaphysis
                       Ellipsoid({0, 0, 5}, {21, 17, 7}, 4),            // epiphysis
                       RoundCone({-17, 0, 8}, {-19, 1, -12}, 8, 6, 5),  // medial malleolus
                   });
  tibia.has_physis = true;
  tibia.physis_point = {0, 0, 11};
  tibia.physis_normal = {0, 0, -1};
  tibia.undulation_mm = 1.2f;
  tibia.long_bone = true;
  tibia.cartilage = CartilageMode::kPhysisSplit;
  tibia.cartilage_young_mm = 4.0f;
  tibia.cartilage_old_mm = 1.5f;

  BoneSpec talus;
  talus.name = "talus";
  talus.label = 2;
  talus.shape =
      MakeShape(1, {
                       Ellipsoid({0, 2, -17.5f}, {15, 20, 16.5f}),        // body and dome
                       Intersect(HalfSpace({0, 0, -29}, {0, 0, -1}, 4)),  // flat subtalar surface
                       RoundCone({-1, -12, -22}, {-3, -24, -25}, 10, 9, 5),  // neck
                       Ellipsoid({-4, -31, -26}, {13, 9, 11}, 4),            // head
                       Ellipsoid({3, 18, -27}, {8, 7, 5}, 4),                // posterior process
                   });
  talus.cartilage = CartilageMode::kUniform;
  talus.cartilage_young_mm = 3.0f;
  talus.cartilage_old_mm = 1.4f;
  talus.marrow_fat_young = 0.45f;
  talus.marrow_fat_old = 0.8f;

  BoneSpec calcaneus;
  calcaneus.name = "calcaneus";
  calcaneus.label = 1;
  calcaneus.shape = MakeShape(
      1, {
             EllipsoidRot({3, 10, -47}, {14, 35, 17}, 0, -15),  // body (anterior end higher)
             Ellipsoid({3, 39, -56}, {14, 11, 16}, 6),          // tuberosity
             Ellipsoid({-12, -3, -40}, {9, 11, 5}, 4),          // sustentaculum tali
         });
  calcaneus.has_physis = true;  // apophyseal plate of the tuberosity
  calcaneus.physis_point = {3, 36, -56};
  calcaneus.physis_normal = Normalized({0, 1, 0.15f});
  calcaneus.undulation_mm = 1.0f;
  calcaneus.cartilage = CartilageMode::kUniform;
  calcaneus.cartilage_young_mm = 2.8f;
  calcaneus.cartilage_old_mm = 1.3f;
  calcaneus.marrow_fat_young = 0.45f;
  calcaneus.marrow_fat_old = 0.8f;

  // Unlabelled neighbours: they look like bone but are background in the label.
  BoneSpec fibula;
  fibula.name = "fibula";
  fibula.shape = MakeShape(0, {
                                  RoundCone({24, 10, 160}, {23, 8, 10}, 6, 7),
                                  Ellipsoid({22, 7, -4}, {7, 11, 16}, 5),  // lateral malleolus
                              });
  fibula.has_physis = true;
  fibula.physis_point = {23, 8, 8};
  fibula.physis_normal = {0, 0, -1};
  fibula.long_bone = true;
  fibula.cartilage = CartilageMode::kPhysisSplit;
  fibula.cartilage_young_mm = 3.0f;
  fibula.cartilage_old_mm = 1.2f;

  BoneSpec navicular;
  navicular.name = "navicular";
  navicular.shape = MakeShape(1, {Ellipsoid({-6, -51, -29}, {15, 6.5f, 12})});
  navicular.cartilage_young_mm = 4.0f;

  BoneSpec cuboid;
  cuboid.name = "cuboid";
  cuboid.shape = MakeShape(1, {Ellipsoid({12, -48, -50}, {12, 11, 11})});
  cuboid.cartilage_young_mm = 4.0f;

  // Yields name bones by index in this list: tibia 0, fibula 1, talus 2, calcaneus 3, cuboid 4,
  // navicular 5.
  a.bones = {tibia, fibula, talus, calcaneus, cuboid, navicular};
  a.bones[0].yields = {{2, 0.6f}};
  a.bones[1].yields = {{0, 0.8f}, {2, 0.6f}};
  a.bones[3].yields = {{2, 0.7f}};
  a.bones[4].yields = {{3, 0.8f}, {5, 0.8f}};
  a.bones[5].yields = {{2, 0.8f}};

  a.envelope = {
      MakeShape(0, {RoundCone({0, 6, -26}, {0, 20, 200}, 30, 40)}),  // leg, down to the malleoli
      MakeShape(1, {Ellipsoid({0, 26, -52}, {26, 24, 20}),           // heel
                    RoundCone({0, 10, -50}, {0, -140, -46}, 27, 18, 14)}),  // foot
  };
  a.soft = {
      // Achilles and plantar fascia, anterior and posterior tendons.
      Soft(T::kFibrous, MakeShape(0, {EllipsoidRot({0, 43, 10}, {9, 3.5f, 66}, 0, -6)})),
      Soft(T::kFibrous, MakeShape(1, {EllipsoidRot({0, -12, -70}, {13, 48, 1.8f}, 0, -8)})),
      Soft(T::kFibrous, MakeShape(0, {RoundCone({-10, -22, 90}, {-12, -30, -20}, 3, 3)})),
      Soft(T::kFibrous, MakeShape(0, {RoundCone({2, -24, 90}, {-1, -44, -24}, 2.5f, 2.5f)})),
      Soft(T::kFibrous, MakeShape(0, {RoundCone({-17, 9, 70}, {-22, -8, -30}, 3, 3)})),
      Soft(T::kFibrous, MakeShape(0, {RoundCone({27, 17, 70}, {24, 14, -30}, 3, 3)})),
      // Posterior tibial vessels.
      Soft(T::kVessel, MakeShape(0, {RoundCone({-12, 22, 110}, {-15, 10, -40}, 2.2f, 2.2f)})),
      // Anterior and posterior recesses (effusion).
      Soft(T::kFluid, MakeShape(0, {Ellipsoid({0, -18, 0}, {14, 3, 6})}), true),
      Soft(T::kFluid, MakeShape(0, {Ellipsoid({0, 19, -8}, {12, 3, 6})}), true),
      // Kager's fat pad, anterior fat pad, heel and sole fat.
      Soft(T::kFat, MakeShape(0, {Ellipsoid({0, 30, 4}, {14, 9, 26})})),
      Soft(T::kFat, MakeShape(0, {Ellipsoid({0, -20, 2}, {18, 6, 10})})),
      Soft(T::kFat, MakeShape(1, {Ellipsoid({0, 22, -70}, {22, 22, 9})})),
      Soft(T::kFat, MakeShape(1, {Ellipsoid({0, -50, -68}, {22, 60, 5})})),
  };
  a.capsule = MakeShape(0, {Ellipsoid({0, 0, -12}, {32, 30, 26})});
  return a;
}

JointAnatomy Shoulder() {
  JointAnatomy a;
  a.label_names = {"humerus", "scapula"};
  a.num_groups = 2;  // 0 scapula and trunk, 1 humerus and arm
  a.pivot = {0, 0, 0};
  a.pose_axis = 1;
  a.pose_min_deg = 0;
  a.pose_max_deg = 15;  // abduction
  a.pose_sign = -1;     // abduction swings the shaft laterally: negative about +y
  a.twist_axis = 2;
  a.twist_max_deg = 25;  // internal / external rotation
  SetCoronal(&a);
  a.fov_center = {-14, 0, -6};
  a.default_size = 176;
  a.default_spacing_mm = 0.8;
  a.default_slices = 24;

  BoneSpec humerus;
  humerus.name = "humerus";
  humerus.label = 1;
  humerus.shape = MakeShape(
      1,
      {
          Ellipsoid({0, 0, 0}, {19, 19, 19.5f}),                // head
          Ellipsoid({14, -2, 2}, {9, 12, 12}, 5),               // greater tuberosity
          Ellipsoid({6, -14, -4}, {6, 6, 9}, 4),                // lesser tuberosity
          RoundCone({7, 0, -10}, {10, 0, -45}, 14.5f, 10, 8),   // neck and metaphysis
          RoundCone({10, 0, -45}, {12, 0, -200}, 10, 9.5f, 4),  // shaft
          Subtract(RoundCone({12, -17, 10}, {13, -14, -40}, 3.5f, 3.5f, 1.5f)),  // bicipital groove
      });
  humerus.has_physis = true;
  humerus.physis_point = {2, 0, -6};
  humerus.physis_normal = Normalized({-0.37f, 0, 0.93f});
  humerus.undulation_mm = 1.5f;
  humerus.long_bone = true;
  humerus.cartilage = CartilageMode::kPhysisSplit;
  humerus.cartilage_young_mm = 5.5f;
  humerus.cartilage_old_mm = 1.8f;

  BoneSpec scapula;
  scapula.name = "scapula";
  scapula.label = 2;
  scapula.shape =
      MakeShape(0, {
                       Ellipsoid({-27.5f, 2, 0}, {7, 14, 20}),                // glenoid
                       RoundCone({-31, 3, 0}, {-48, 7, -6}, 9, 6, 5),         // neck
                       Ellipsoid({-88, 13, -28}, {48, 3, 55}, 6),             // body (blade)
                       RoundCone({-44, 9, -10}, {-78, 14, -90}, 5, 4, 5),     // lateral border
                       Ellipsoid({-72, 18, 16}, {34, 3, 14}, 5),              // supraspinous fossa
                       RoundCone({-100, 30, 30}, {-38, 26, 30}, 5, 6, 4),     // spine
                       EllipsoidRot({-8, 12, 33}, {22, 16, 4.5f}, 2, 30, 5),  // acromion
                       RoundCone({-33, -8, 16}, {-25, -32, 12}, 6, 5, 4),     // coracoid
                   });
  scapula.cartilage = CartilageMode::kZone;
  scapula.zone_center = {-22, 2, 0};
  scapula.zone_radius = 21;
  scapula.cartilage_young_mm = 3.5f;
  scapula.cartilage_old_mm = 1.5f;
  scapula.marrow_fat_young = 0.3f;
  scapula.marrow_fat_old = 0.6f;
  scapula.yields = {{0, 0.6f}};

  BoneSpec clavicle;
  clavicle.name = "clavicle";
  clavicle.shape = MakeShape(0, {
                                    RoundCone({-130, -20, 48}, {-30, 5, 41}, 8, 8),
                                    Ellipsoid({-26, 6, 40}, {7, 10, 6}, 4),
                                });
  clavicle.cartilage = CartilageMode::kZone;
  clavicle.zone_center = {-22, 6, 40};
  clavicle.zone_radius = 8;
  clavicle.yields = {{1, 1.2f}};

  a.bones = {humerus, scapula, clavicle};

  a.envelope = {
      MakeShape(0, {Ellipsoid({-6, 4, 2}, {44, 46, 44}),                     // deltoid cap
                    Ellipsoid({-112, 15, -40}, {100, 70, 120}, 20),          // trunk
                    RoundCone({-60, 20, 40}, {-130, 20, 90}, 30, 35, 20)}),  // trapezius
      MakeShape(1, {RoundCone({6, 0, -20}, {14, 0, -200}, 36, 32)}),         // arm
  };
  a.soft = {
      // Rotator cuff (supraspinatus tendon arching over the head), biceps tendon, labrum.
      Soft(T::kFibrous, MakeShape(1, {Ellipsoid({0, 0, 0}, {24.5f, 24.5f, 24.5f}),
                                      Subtract(Ellipsoid({0, 0, 0}, {20, 20, 20.5f})),
                                      Intersect(HalfSpace({0, 0, 9}, {0, 0, -1})),
                                      Intersect(HalfSpace({-10, 0, 0}, {-1, 0, 0})),
                                      Intersect(HalfSpace({0, 14, 0}, {0, 1, 0})),
                                      Intersect(HalfSpace({0, -14, 0}, {0, -1, 0}))})),
      Soft(T::kFibrous, MakeShape(1, {RoundCone({12, -17, 8}, {14, -15, -80}, 2.8f, 2.8f)})),
      Soft(T::kFibrous, MakeShape(0, {Torus({-22, 2, 0}, {1, 0, 0}, 16, 3.5f, 3.5f)})),
      // Axillary vessels.
      Soft(T::kVessel, MakeShape(0, {RoundCone({-90, -8, -6}, {-20, -6, -70}, 3.5f, 3.5f)})),
      Soft(T::kVessel, MakeShape(0, {RoundCone({-92, -2, -14}, {-24, 0, -78}, 4.5f, 4.5f)})),
      // Axillary recess (effusion).
      Soft(T::kFluid, MakeShape(0, {Ellipsoid({-14, 2, -21}, {8, 10, 3.5f})}), true),
      // Subacromial-subdeltoid (peribursal) fat, axillary fat, fat above the supraspinatus.
      Soft(T::kFat, MakeShape(1, {Ellipsoid({0, 0, 0}, {26.5f, 26.5f, 26.5f}),
                                  Subtract(Ellipsoid({0, 0, 0}, {25, 25, 25})),
                                  Intersect(HalfSpace({0, 0, -6}, {0, 0, -1})),
                                  Intersect(HalfSpace({-12, 0, 0}, {-1, 0, 0}))})),
      Soft(T::kFat, MakeShape(0, {Ellipsoid({-40, 5, -54}, {14, 18, 14})})),
      Soft(T::kFat, MakeShape(0, {Ellipsoid({-60, 18, 38}, {30, 14, 5})})),
  };
  a.capsule = MakeShape(0, {Ellipsoid({-10, 0, -2}, {30, 28, 30})});
  return a;
}

}  // namespace

JointAnatomy ReferenceAnatomy(std::string_view joint) {
  return joint == "ankle" ? Ankle() : joint == "shoulder" ? Shoulder() : Knee();
}

}  // namespace fedjoint::common::data::phantom_internal
