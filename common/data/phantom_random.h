// Deterministic randomness for the phantom generator. std::mt19937_64's output sequence is fixed by
// the C++ standard, but std::uniform_real_distribution / std::normal_distribution are not
// (libstdc++ and libc++ differ), so the distributions here are written out: the same seed gives
// bit-identical phantoms with any standard library.
#pragma once

#include <cstdint>

#include "common/data/rng.h"

namespace fedjoint::common::data::phantom_internal {

// Combines a seed with another value into a new, well-mixed seed (names are folded in with
// data::Fingerprint).
inline uint64_t CombineSeeds(uint64_t seed, uint64_t value) {
  return data::MixSeed(data::MixSeed(seed) ^ value);
}

// data::Rng with the phantoms' normal draws. Every phantom file is fixed by its seed's stream, so
// the stream must not change: here a normal draw uses both uniforms of a Box-Muller pair and
// discards its second value (data::Rng keeps it for the next call).
class Rng : public data::Rng {
 public:
  explicit Rng(uint64_t seed) : data::Rng(seed) {}

  using data::Rng::Uniform;
  // Standard normal: the first of a Box-Muller pair.
  double Normal();
  double Normal(double mean, double sd) { return mean + sd * Normal(); }
  // Normal clipped to mean ± limit·sd: keeps shape jitter inside anatomically sane bounds.
  double ClippedNormal(double mean, double sd, double limit = 2.5);
  // Two independent standard normals (both halves of one Box-Muller draw).
  void NormalPair(double* a, double* b);
};

// Smooth 3D value noise in [-1, 1] with features of about `cell_mm`: random values on an integer
// lattice (hashed from the seed, so no tables), blended with a C1 smoothstep. Cheap enough to
// sample at every fine grid point for textures (marrow trabeculae, intermuscular fat septa).
class ValueNoise {
 public:
  ValueNoise() = default;
  ValueNoise(uint64_t seed, float cell_mm) : seed_(seed), inv_cell_(1.0f / cell_mm) {}

  float operator()(float x, float y, float z) const;

 private:
  float Lattice(int32_t i, int32_t j, int32_t k) const;

  uint64_t seed_ = 0;
  float inv_cell_ = 1.0f;
};

}  // namespace fedjoint::common::data::phantom_internal
