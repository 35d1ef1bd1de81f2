#include "common/metrics/distance_transform.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace fedjoint::common::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One pass along a line: d[q] = min_p ((q − p)·s)² + f[p]. f may contain +inf (no feature).
// v (parabola apexes) and z (envelope boundaries) are scratch buffers of n and n + 1 elements.
void Transform1d(const double* f, int64_t n, double s, double* d, int64_t* v, double* z) {
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    const double xq = static_cast<double>(q) * s;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -kInf;
      z[1] = kInf;
      continue;
    }
    double boundary;
    while (true) {
      const int64_t p = v[k];
      const double xp = static_cast<double>(p) * s;
      // Where the parabolas from p and q meet; z[0] = −inf ends the loop at k = 0 at the latest.
      boundary = ((f[q] + xq * xq) - (f[p] + xp * xp)) / (2.0 * (xq - xp));
      if (boundary > z[k]) break;
      --k;
    }
    ++k;
    v[k] = q;
    z[k] = boundary;
    z[k + 1] = kInf;
  }
  if (k < 0) {
    for (int64_t q = 0; q < n; ++q) d[q] = kInf;
    return;
  }
  k = 0;
  for (int64_t q = 0; q < n; ++q) {
    const double xq = static_cast<double>(q) * s;
    while (z[k + 1] < xq) ++k;
    const double dx = xq - static_cast<double>(v[k]) * s;
    d[q] = dx * dx + f[v[k]];
  }
}

}  // namespace

std::vector<double> SquaredDistanceTransform(std::span<const uint8_t> feature,
                                             const std::array<int64_t, 3>& size,
                                             const std::array<double, 3>& spacing) {
  const int64_t total = size[0] * size[1] * size[2];
  assert(static_cast<int64_t>(feature.size()) == total);
  std::vector<double> distance(static_cast<size_t>(total));
  for (int64_t n = 0; n < total; ++n) distance[n] = feature[n] ? 0.0 : kInf;

  const int64_t longest = std::max({size[0], size[1], size[2]});
  std::vector<double> line(longest), out(longest), z(longest + 1);
  std::vector<int64_t> v(longest);
  const std::array<int64_t, 3> stride = {1, size[0], size[0] * size[1]};
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t n = size[axis];
    if (n == 0) continue;
    // Every line along `axis` starts at a voxel whose `axis` index is 0.
    const int a = (axis + 1) % 3;
    const int b = (axis + 2) % 3;
    for (int64_t ib = 0; ib < size[b]; ++ib) {
      for (int64_t ia = 0; ia < size[a]; ++ia) {
        const int64_t start = ia * stride[a] + ib * stride[b];
        for (int64_t q = 0; q < n; ++q) line[q] = distance[start + q * stride[axis]];
        Transform1d(line.data(), n, spacing[axis], out.data(), v.data(), z.data());
        for (int64_t q = 0; q < n; ++q) distance[start + q * stride[axis]] = out[q];
      }
    }
  }
  return distance;
}

}  // namespace fedjoint::common::metrics
