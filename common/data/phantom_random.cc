#include "common/data/phantom_random.h"

#include <cmath>

namespace fedjoint::common::data::phantom_internal {

void Rng::NormalPair(double* a, double* b) {
  // 1 - U is in (0, 1], so the logarithm is finite.
  const double u1 = 1.0 - Uniform();
  const double u2 = Uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 6.283185307179586 * u2;
  *a = r * std::cos(theta);
  *b = r * std::sin(theta);
}

double Rng::Normal() {
  double a = 0.0;
  double b = 0.0;
  NormalPair(&a, &b);
  return a;
}

double Rng::ClippedNormal(double mean, double sd, double limit) {
  double z = Normal();
  if (z > limit) z = limit;
  if (z < -limit) z = -limit;
  return mean + sd * z;
}

float ValueNoise::Lattice(int32_t i, int32_t j, int32_t k) const {
  // One multiply-xor hash per lattice point (murmur3's 32-bit finaliser): value noise needs eight
  // per sample, at millions of samples per subject.
  uint32_t h = static_cast<uint32_t>(seed_) ^ static_cast<uint32_t>(seed_ >> 32);
  h ^= static_cast<uint32_t>(i) * 0x8DA6B343u;
  h ^= static_cast<uint32_t>(j) * 0xD8163841u;
  h ^= static_cast<uint32_t>(k) * 0xCB1AB31Fu;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  // Top 24 bits -> [-1, 1).
  return static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

float ValueNoise::operator()(float x, float y, float z) const {
  x *= inv_cell_;
  y *= inv_cell_;
  z *= inv_cell_;
  const float fx = std::floor(x);
  const float fy = std::floor(y);
  const float fz = std::floor(z);
  const auto i = static_cast<int32_t>(fx);
  const auto j = static_cast<int32_t>(fy);
  const auto k = static_cast<int32_t>(fz);
  auto smooth = [](float t) { return t * t * (3.0f - 2.0f * t); };
  const float tx = smooth(x - fx);
  const float ty = smooth(y - fy);
  const float tz = smooth(z - fz);
  auto lerp = [](float a, float b, float t) { return a + (b - a) * t; };
  const float c00 = lerp(Lattice(i, j, k), Lattice(i + 1, j, k), tx);
  const float c10 = lerp(Lattice(i, j + 1, k), Lattice(i + 1, j + 1, k), tx);
  const float c01 = lerp(Lattice(i, j, k + 1), Lattice(i + 1, j, k + 1), tx);
  const float c11 = lerp(Lattice(i, j + 1, k + 1), Lattice(i + 1, j + 1, k + 1), tx);
  return lerp(lerp(c00, c10, ty), lerp(c01, c11, ty), tz);
}

}  // namespace fedjoint::common::data::phantom_internal
