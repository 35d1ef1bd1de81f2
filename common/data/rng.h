// Portable, reproducible random numbers for data sampling and augmentation.
//
// The standard engines (std::mt19937_64) are specified bit for bit, but the standard distributions
// (uniform_real_distribution, normal_distribution, shuffle, ...) are implementation-defined and
// differ between libstdc++, libc++ and MSVC. Everything that must give the same batches on every
// machine therefore draws from Rng, whose distributions are written out here.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

namespace fedjoint::common::data {

// One step of SplitMix64: a bijective 64-bit mixer with good avalanche, used to derive
// independent stream seeds from structured keys.
uint64_t MixSeed(uint64_t x);

// A seed for the stream named by `keys`, e.g. DeriveSeed({seed, epoch, batch, sample}).
// Different key sequences give (with overwhelming probability) unrelated streams; the same
// sequence always gives the same seed.
uint64_t DeriveSeed(std::initializer_list<uint64_t> keys);

// A portable 64-bit fingerprint of a string (FNV-1a), for keys such as a joint name
// (std::hash is implementation-defined).
uint64_t Fingerprint(std::string_view text);

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  uint64_t NextU64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  // Uniform in [low, high) (low when low == high).
  double Uniform(double low, double high) { return low + (high - low) * Uniform(); }
  // Uniform integer in [0, n), without modulo bias; n must be > 0.
  uint64_t UniformInt(uint64_t n);
  // True with probability p. Always consumes one draw, so p does not shift later draws.
  bool Bernoulli(double p) { return Uniform() < p; }
  // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double Normal();

 private:
  std::mt19937_64 engine_;
  double spare_normal_ = 0.0;
  bool has_spare_normal_ = false;
};

// Fisher-Yates shuffle with Rng (std::shuffle's sequence is implementation-defined).
template <typename T>
void Shuffle(std::vector<T>& values, Rng& rng) {
  for (size_t i = values.size(); i > 1; --i) {
    const size_t j = rng.UniformInt(i);
    std::swap(values[i - 1], values[j]);
  }
}

}  // namespace fedjoint::common::data
