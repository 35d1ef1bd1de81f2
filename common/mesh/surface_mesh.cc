#include "common/mesh/surface_mesh.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include <fmt/format.h>

namespace fedjoint::common::mesh {
namespace {

using Vec3 = std::array<double, 3>;

Vec3 Sub(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
Vec3 Cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double Dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

// Kuhn triangulation of the unit cube: corner c has offset (c & 1, (c >> 1) & 1, (c >> 2) & 1).
// Tetrahedron p walks from corner 0 to corner 7 adding the axes in the order of permutation p;
// every cube cut this way shares its face diagonals with its neighbours.
constexpr std::array<std::array<int, 4>, 6> kTetrahedra = {{
    {0, 1, 3, 7},  // x, y, z
    {0, 1, 5, 7},  // x, z, y
    {0, 2, 3, 7},  // y, x, z
    {0, 2, 6, 7},  // y, z, x
    {0, 4, 5, 7},  // z, x, y
    {0, 4, 6, 7},  // z, y, x
}};

class Mesher {
 public:
  Mesher(std::span<const uint8_t> voxels, const data::Geometry& geometry, uint8_t label)
      : voxels_(voxels), geometry_(geometry), label_(label) {
    // Physical position = origin + M * index with M = direction * diag(spacing).
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) m_[r][c] = geometry.direction[r * 3 + c] * geometry.spacing[c];
    }
  }

  TriangleMesh Run() {
    const auto& size = geometry_.size;
    std::array<int64_t, 3> lo{size[0], size[1], size[2]}, hi{-1, -1, -1};
    for (int64_t k = 0; k < size[2]; ++k) {
      for (int64_t j = 0; j < size[1]; ++j) {
        const uint8_t* row = voxels_.data() + (k * size[1] + j) * size[0];
        for (int64_t i = 0; i < size[0]; ++i) {
          if (row[i] != label_) continue;
          lo = {std::min(lo[0], i), std::min(lo[1], j), std::min(lo[2], k)};
          hi = {std::max(hi[0], i), std::max(hi[1], j), std::max(hi[2], k)};
        }
      }
    }
    if (hi[0] < 0) return {};
    // Cubes whose lower corner runs from one voxel before the structure to its last voxel: the
    // outermost cubes reach the (virtual) background padding, which closes the surface.
    for (int64_t z = lo[2] - 1; z <= hi[2]; ++z) {
      for (int64_t y = lo[1] - 1; y <= hi[1]; ++y) {
        for (int64_t x = lo[0] - 1; x <= hi[0]; ++x) Cube(x, y, z);
      }
    }
    return std::move(mesh_);
  }

 private:
  bool Inside(int64_t i, int64_t j, int64_t k) const {
    const auto& s = geometry_.size;
    if (i < 0 || j < 0 || k < 0 || i >= s[0] || j >= s[1] || k >= s[2]) return false;
    return voxels_[static_cast<size_t>((k * s[1] + j) * s[0] + i)] == label_;
  }

  Vec3 Physical(double i, double j, double k) const {
    const auto& o = geometry_.origin;
    return {o[0] + m_[0][0] * i + m_[0][1] * j + m_[0][2] * k,
            o[1] + m_[1][0] * i + m_[1][1] * j + m_[1][2] * k,
            o[2] + m_[2][0] * i + m_[2][1] * j + m_[2][2] * k};
  }

  // Index of the vertex at the midpoint of the edge between corners a and b of cube (x, y, z),
  // shared by every tetrahedron (of this and neighbouring cubes) holding that edge. Kuhn edges join
  // a corner to one whose offset bits are a superset, so (lower corner, bit difference) names the
  // edge uniquely.
  int32_t EdgeVertex(int64_t x, int64_t y, int64_t z, int a, int b) {
    const int low = (a & b) == a ? a : b;
    const int high = low == a ? b : a;
    const int64_t px = x + (low & 1) + 1, py = y + ((low >> 1) & 1) + 1,
                  pz = z + ((low >> 2) & 1) + 1;  // +1: the padding makes indices >= 0
    const auto& s = geometry_.size;
    const uint64_t point = static_cast<uint64_t>((pz * (s[1] + 2) + py) * (s[0] + 2) + px);
    const uint64_t key = point * 8 + static_cast<uint64_t>(low ^ high);
    auto [it, inserted] = vertex_of_edge_.try_emplace(key, 0);
    if (inserted) {
      it->second = static_cast<int32_t>(mesh_.vertices.size());
      mesh_.vertices.push_back(Physical(x + 0.5 * ((a & 1) + (b & 1)),
                                        y + 0.5 * (((a >> 1) & 1) + ((b >> 1) & 1)),
                                        z + 0.5 * (((a >> 2) & 1) + ((b >> 2) & 1))));
    }
    return it->second;
  }

  // Appends triangle (v0, v1, v2) wound so that its normal points along `outward`.
  void AddTriangle(int32_t v0, int32_t v1, int32_t v2, const Vec3& outward) {
    const auto& p = mesh_.vertices;
    const Vec3 normal = Cross(Sub(p[v1], p[v0]), Sub(p[v2], p[v0]));
    if (Dot(normal, outward) < 0) std::swap(v1, v2);
    mesh_.triangles.push_back({v0, v1, v2});
  }

  void Cube(int64_t x, int64_t y, int64_t z) {
    std::array<bool, 8> in;
    int count = 0;
    for (int c = 0; c < 8; ++c) {
      in[c] = Inside(x + (c & 1), y + ((c >> 1) & 1), z + ((c >> 2) & 1));
      count += in[c];
    }
    if (count == 0 || count == 8) return;
    for (const auto& tet : kTetrahedra) {
      std::array<int, 4> inside{}, outside{};
      int n_in = 0, n_out = 0;
      for (int c : tet) (in[c] ? inside[n_in++] : outside[n_out++]) = c;
      if (n_in == 0 || n_out == 0) continue;
      // Outward: from the inside corners' centroid towards the outside corners' centroid.
      Vec3 in_centre{0, 0, 0}, out_centre{0, 0, 0};
      for (int q = 0; q < n_in; ++q) {
        const Vec3 p = Corner(x, y, z, inside[q]);
        for (int d = 0; d < 3; ++d) in_centre[d] += p[d] / n_in;
      }
      for (int q = 0; q < n_out; ++q) {
        const Vec3 p = Corner(x, y, z, outside[q]);
        for (int d = 0; d < 3; ++d) out_centre[d] += p[d] / n_out;
      }
      const Vec3 outward = Sub(out_centre, in_centre);
      if (n_in == 1) {
        const int a = inside[0];
        AddTriangle(EdgeVertex(x, y, z, a, outside[0]), EdgeVertex(x, y, z, a, outside[1]),
                    EdgeVertex(x, y, z, a, outside[2]), outward);
      } else if (n_out == 1) {
        const int d = outside[0];
        AddTriangle(EdgeVertex(x, y, z, inside[0], d), EdgeVertex(x, y, z, inside[1], d),
                    EdgeVertex(x, y, z, inside[2], d), outward);
      } else {
        // Inside a, b; outside c, d: the quad ac-ad-bd-bc (consecutive ones share a corner).
        const int a = inside[0], b = inside[1], c = outside[0], d = outside[1];
        const int32_t ac = EdgeVertex(x, y, z, a, c), ad = EdgeVertex(x, y, z, a, d),
                      bd = EdgeVertex(x, y, z, b, d), bc = EdgeVertex(x, y, z, b, c);
        AddTriangle(ac, ad, bd, outward);
        AddTriangle(ac, bd, bc, outward);
      }
    }
  }

  Vec3 Corner(int64_t x, int64_t y, int64_t z, int c) const {
    return Physical(static_cast<double>(x + (c & 1)), static_cast<double>(y + ((c >> 1) & 1)),
                    static_cast<double>(z + ((c >> 2) & 1)));
  }

  std::span<const uint8_t> voxels_;
  const data::Geometry& geometry_;
  uint8_t label_;
  double m_[3][3];
  TriangleMesh mesh_;
  std::unordered_map<uint64_t, int32_t> vertex_of_edge_;
};

}  // namespace

absl::StatusOr<TriangleMesh> MeshLabel(std::span<const uint8_t> voxels,
                                       const data::Geometry& geometry, uint8_t label) {
  if (absl::Status s = data::ValidateGeometry(geometry, "label volume to mesh"); !s.ok()) return s;
  if (static_cast<int64_t>(voxels.size()) != geometry.NumVoxels()) {
    return absl::InvalidArgumentError(
        fmt::format("label volume to mesh: {} voxels for a {}x{}x{} grid", voxels.size(),
                    geometry.size[0], geometry.size[1], geometry.size[2]));
  }
  if (label == 0) {
    return absl::InvalidArgumentError("label volume to mesh: label 0 is the background");
  }
  return Mesher(voxels, geometry, label).Run();
}

double SignedVolume(const TriangleMesh& mesh) {
  double six_volume = 0;
  for (const auto& t : mesh.triangles) {
    six_volume += Dot(mesh.vertices[t[0]], Cross(mesh.vertices[t[1]], mesh.vertices[t[2]]));
  }
  return six_volume / 6.0;
}

std::array<double, 3> TriangleNormal(const TriangleMesh& mesh, size_t t) {
  const auto& tri = mesh.triangles[t];
  const auto& p = mesh.vertices;
  Vec3 n = Cross(Sub(p[tri[1]], p[tri[0]]), Sub(p[tri[2]], p[tri[0]]));
  const double length = std::sqrt(Dot(n, n));
  if (length == 0) return {0, 0, 0};
  return {n[0] / length, n[1] / length, n[2] / length};
}

}  // namespace fedjoint::common::mesh
