// Deterministic randomness for the phantom generator. std::mt19937_64's output sequence is fixed by
// the C++ standard, but std::uniform_real_distribution / std::normal_distribution are not
// (libstdc++ and libc++ differ), so the distributions here are written out: the same seed gives
// bit-identical phantoms with any standard library.
#pragma once

#include <cstdint>
#include <random>
#include <string_view>

namespace fedjoint::common::data::phantom_internal {

// SplitMix64 finaliser: a strong 64-bit mix, used to derive independent stream seeds.
uint64_t Mix64(uint64_t x);
// Combines a seed with another value into a new, well-mixed seed.
uint64_t MixSeed(uint64_t seed, uint64_t value);
// FNV-1a of a string, to fold names (joint, domain, stream purpose) into seeds.
uint64_t HashName(std::string_view text);

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  uint64_t NextU64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Standard normal (Box-Muller; one of the pair is discarded to keep the stream simple).
  double Normal();
  double Normal(double mean, double sd) { return mean + sd * Normal(); }
  // Normal clipped to mean ± limit·sd: keeps shape jitter inside anatomically sane bounds.
  double ClippedNormal(double mean, double sd, double limit = 2.5);
  // Two independent standard normals (both halves of one Box-Muller draw).
  void NormalPair(double* a, double* b);
  bool Bernoulli(double p) { return Uniform() < p; }

 private:
  std::mt19937_64 engine_;
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
