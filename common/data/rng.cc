#include "common/data/rng.h"

#include <cmath>
#include <numbers>

namespace fedjoint::common::data {

uint64_t MixSeed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t DeriveSeed(std::initializer_list<uint64_t> keys) {
  // Chained mixing (not XOR of mixed keys), so the order of the keys matters:
  // {epoch 1, batch 2} and {epoch 2, batch 1} are different streams.
  uint64_t state = 0x6A09E667F3BCC909ull ^ keys.size();
  for (uint64_t key : keys) state = MixSeed(state ^ MixSeed(key));
  return state;
}

uint64_t Fingerprint(std::string_view text) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001B3ull;
  }
  return hash;
}

uint64_t Rng::UniformInt(uint64_t n) {
  if (n <= 1) return 0;
  // Rejection of the incomplete top range: every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x = engine_();
  while (x >= limit) x = engine_();
  return x % n;
}

double Rng::Normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  // 1 - Uniform() lies in (0, 1], so the logarithm is finite.
  const double radius = std::sqrt(-2.0 * std::log(1.0 - Uniform()));
  const double angle = 2.0 * std::numbers::pi * Uniform();
  spare_normal_ = radius * std::sin(angle);
  has_spare_normal_ = true;
  return radius * std::cos(angle);
}

}  // namespace fedjoint::common::data
