#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <numbers>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "common/mesh/mesh_io.h"
#include "common/mesh/surface_mesh.h"

namespace fedjoint::common::mesh {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A ball of `radius` voxels around voxel `centre`, label `value`, in a grid of `size`.
std::vector<uint8_t> Ball(const std::array<int64_t, 3>& size, const std::array<double, 3>& centre,
                          double radius, uint8_t value, std::vector<uint8_t> voxels = {}) {
  if (voxels.empty()) voxels.assign(static_cast<size_t>(size[0] * size[1] * size[2]), 0);
  for (int64_t k = 0; k < size[2]; ++k) {
    for (int64_t j = 0; j < size[1]; ++j) {
      for (int64_t i = 0; i < size[0]; ++i) {
        const double dx = i - centre[0], dy = j - centre[1], dz = k - centre[2];
        if (dx * dx + dy * dy + dz * dz <= radius * radius) {
          voxels[static_cast<size_t>((k * size[1] + j) * size[0] + i)] = value;
        }
      }
    }
  }
  return voxels;
}

int64_t Count(const std::vector<uint8_t>& voxels, uint8_t value) {
  return std::count(voxels.begin(), voxels.end(), value);
}

// A grid that is rotated (about an oblique axis), anisotropic, and off the origin.
data::Geometry TiltedGeometry(const std::array<int64_t, 3>& size) {
  data::Geometry g;
  g.size = size;
  g.spacing = {0.8, 1.1, 2.5};
  g.origin = {-40.0, 12.5, 100.0};
  const double a = 0.4, b = 0.3;  // rotations about z, then x
  const double ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
  // Rz(a) * Rx(b), row-major
  g.direction = {ca, -sa * cb, sa * sb, sa, ca * cb, -ca * sb, 0, sb, cb};
  return g;
}

// Every undirected edge belongs to exactly two triangles, and they traverse it in opposite
// directions (a closed, consistently oriented surface). Returns the first problem, or "".
std::string CheckClosedAndOriented(const TriangleMesh& mesh) {
  std::map<std::pair<int32_t, int32_t>, int> directed;
  for (const auto& t : mesh.triangles) {
    for (int e = 0; e < 3; ++e) ++directed[{t[e], t[(e + 1) % 3]}];
  }
  for (const auto& [edge, count] : directed) {
    if (count != 1) {
      return "edge " + std::to_string(edge.first) + "->" + std::to_string(edge.second) + " used " +
             std::to_string(count) + " times in the same direction";
    }
    if (!directed.count({edge.second, edge.first})) {
      return "edge " + std::to_string(edge.first) + "-" + std::to_string(edge.second) +
             " has only one triangle (hole)";
    }
  }
  return "";
}

// Binary STL repeats vertices per triangle: merge identical positions before checking topology.
TriangleMesh MergeVertices(const TriangleMesh& mesh) {
  std::map<std::array<double, 3>, int32_t> index;
  TriangleMesh merged;
  for (const auto& t : mesh.triangles) {
    std::array<int32_t, 3> tri;
    for (int v = 0; v < 3; ++v) {
      auto [it, inserted] =
          index.try_emplace(mesh.vertices[t[v]], static_cast<int32_t>(merged.vertices.size()));
      if (inserted) merged.vertices.push_back(mesh.vertices[t[v]]);
      tri[v] = it->second;
    }
    merged.triangles.push_back(tri);
  }
  return merged;
}

double VoxelVolume(const data::Geometry& g) { return g.spacing[0] * g.spacing[1] * g.spacing[2]; }

TEST(SurfaceMeshTest, SphereIsClosedOutwardAndHasTheVoxelVolume) {
  const std::array<int64_t, 3> size{32, 30, 28};
  const auto voxels = Ball(size, {15.3, 14.6, 13.8}, 10.0, 3);
  const data::Geometry geometry = TiltedGeometry(size);
  auto mesh = MeshLabel(voxels, geometry, 3);
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  ASSERT_FALSE(mesh->empty());
  EXPECT_EQ(CheckClosedAndOriented(*mesh), "");

  const double voxel_volume = Count(voxels, 3) * VoxelVolume(geometry);
  const double volume = SignedVolume(*mesh);
  EXPECT_GT(volume, 0);
  EXPECT_NEAR(volume / voxel_volume, 1.0, 0.10) << volume << " vs " << voxel_volume;
  // The continuous ball the mask digitizes: the mesh is within 10 % of it too.
  const double ball = 4.0 / 3.0 * std::numbers::pi * 1000.0 * VoxelVolume(geometry);
  EXPECT_NEAR(volume / ball, 1.0, 0.10);

  // Physical placement: the vertices' centre is the ball's centre mapped through the geometry.
  std::array<double, 3> centre{0, 0, 0};
  for (const auto& v : mesh->vertices) {
    for (int d = 0; d < 3; ++d) centre[d] += v[d] / mesh->vertices.size();
  }
  const auto expected = data::IndexToPhysical(geometry, {15.3, 14.6, 13.8});
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(centre[d], expected[d], 0.5) << "axis " << d;
}

TEST(SurfaceMeshTest, MirroredGridStillGivesOutwardNormals) {
  const std::array<int64_t, 3> size{24, 24, 24};
  const auto voxels = Ball(size, {11.5, 12.0, 11.0}, 8.0, 1);
  data::Geometry geometry;
  geometry.size = size;
  geometry.spacing = {1.0, 0.5, 2.0};
  geometry.direction = {-1, 0, 0, 0, 1, 0, 0, 0, 1};  // det -1
  auto mesh = MeshLabel(voxels, geometry, 1);
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  EXPECT_EQ(CheckClosedAndOriented(*mesh), "");
  EXPECT_GT(SignedVolume(*mesh), 0);
}

TEST(SurfaceMeshTest, StructureTouchingTheBorderIsClosed) {
  const std::array<int64_t, 3> size{20, 20, 12};
  // Centred on a corner voxel: cut by three faces of the volume.
  const auto voxels = Ball(size, {0, 0, 11}, 7.0, 2);
  data::Geometry geometry;
  geometry.size = size;
  auto mesh = MeshLabel(voxels, geometry, 2);
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  EXPECT_EQ(CheckClosedAndOriented(*mesh), "");
  EXPECT_NEAR(SignedVolume(*mesh) / Count(voxels, 2), 1.0, 0.2);
}

TEST(SurfaceMeshTest, LabelsAreMeshedSeparatelyAndAbsentLabelIsEmpty) {
  const std::array<int64_t, 3> size{40, 20, 20};
  auto voxels = Ball(size, {9, 10, 10}, 6.0, 1);
  voxels = Ball(size, {30, 10, 10}, 4.0, 2, voxels);
  data::Geometry geometry;
  geometry.size = size;
  auto one = MeshLabel(voxels, geometry, 1);
  auto two = MeshLabel(voxels, geometry, 2);
  auto none = MeshLabel(voxels, geometry, 5);
  ASSERT_TRUE(one.ok() && two.ok() && none.ok());
  EXPECT_GT(SignedVolume(*one), 3 * SignedVolume(*two));
  for (const auto& v : two->vertices) EXPECT_GT(v[0], 20);
  EXPECT_TRUE(none->empty());
}

TEST(SurfaceMeshTest, SingleVoxelIsAClosedSolid) {
  std::vector<uint8_t> voxels(27, 0);
  voxels[13] = 1;
  data::Geometry geometry;
  geometry.size = {3, 3, 3};
  auto mesh = MeshLabel(voxels, geometry, 1);
  ASSERT_TRUE(mesh.ok());
  EXPECT_EQ(CheckClosedAndOriented(*mesh), "");
  EXPECT_GT(SignedVolume(*mesh), 0);
}

TEST(SurfaceMeshTest, BadInputIsRefused) {
  data::Geometry geometry;
  geometry.size = {4, 4, 4};
  std::vector<uint8_t> voxels(10, 1);
  auto wrong_size = MeshLabel(voxels, geometry, 1);
  EXPECT_THAT(wrong_size.status().message(), HasSubstr("10 voxels for a 4x4x4 grid"));
  voxels.assign(64, 1);
  EXPECT_FALSE(MeshLabel(voxels, geometry, 0).ok());
  geometry.spacing[1] = 0;
  EXPECT_FALSE(MeshLabel(voxels, geometry, 1).ok());
}

class MeshIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fedjoint_mesh_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(MeshIoTest, BinaryStlRoundTripsAndStaysClosed) {
  const std::array<int64_t, 3> size{24, 24, 24};
  const auto voxels = Ball(size, {12, 11, 12.5}, 7.0, 1);
  const data::Geometry geometry = TiltedGeometry(size);
  auto mesh = MeshLabel(voxels, geometry, 1);
  ASSERT_TRUE(mesh.ok());
  ASSERT_TRUE(WriteBinaryStl(*mesh, dir_ / "femur.stl", "femur").ok());
  EXPECT_EQ(fs::file_size(dir_ / "femur.stl"), 84 + 50 * mesh->triangles.size());
  auto back = ReadBinaryStl(dir_ / "femur.stl");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->triangles.size(), mesh->triangles.size());
  for (size_t t = 0; t < mesh->triangles.size(); t += 97) {
    for (int v = 0; v < 3; ++v) {
      for (int d = 0; d < 3; ++d) {
        EXPECT_NEAR(back->vertices[back->triangles[t][v]][d],
                    mesh->vertices[mesh->triangles[t][v]][d], 1e-3);
      }
    }
  }
  const TriangleMesh merged = MergeVertices(*back);
  EXPECT_EQ(merged.vertices.size(), mesh->vertices.size());
  EXPECT_EQ(CheckClosedAndOriented(merged), "");
  EXPECT_NEAR(SignedVolume(merged), SignedVolume(*mesh), 1e-3 * SignedVolume(*mesh));
  // The stored normal of each triangle agrees with its winding (outward).
  auto bytes = base::ReadSmallFile(dir_ / "femur.stl");
  ASSERT_TRUE(bytes.ok());
  EXPECT_THAT(bytes->substr(0, 80), HasSubstr("femur SPACE=LPS"));
  for (size_t t = 0; t < back->triangles.size(); t += 13) {
    float n[3];
    std::memcpy(n, bytes->data() + 84 + 50 * t, 12);
    const auto winding = TriangleNormal(*back, t);
    EXPECT_GT(n[0] * winding[0] + n[1] * winding[1] + n[2] * winding[2], 0.99);
  }
}

TEST_F(MeshIoTest, ObjListsTheSameMesh) {
  const std::array<int64_t, 3> size{12, 12, 12};
  const auto voxels = Ball(size, {6, 6, 6}, 3.0, 1);
  data::Geometry geometry;
  geometry.size = size;
  auto mesh = MeshLabel(voxels, geometry, 1);
  ASSERT_TRUE(mesh.ok());
  ASSERT_TRUE(WriteObj(*mesh, dir_ / "patella.obj", "patella").ok());
  auto text = base::ReadSmallFile(dir_ / "patella.obj");
  ASSERT_TRUE(text.ok());
  size_t v = 0, f = 0;
  for (size_t pos = 0; pos < text->size();) {
    const size_t end = text->find('\n', pos);
    if (text->compare(pos, 2, "v ") == 0) ++v;
    if (text->compare(pos, 2, "f ") == 0) ++f;
    pos = end == std::string::npos ? text->size() : end + 1;
  }
  EXPECT_EQ(v, mesh->vertices.size());
  EXPECT_EQ(f, mesh->triangles.size());
  EXPECT_THAT(*text, HasSubstr("o patella"));
}

TEST_F(MeshIoTest, TruncatedStlIsDataLoss) {
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "short.stl", std::string(84 + 30, '\0')).ok());
  auto mesh = ReadBinaryStl(dir_ / "short.stl");
  EXPECT_EQ(mesh.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace fedjoint::common::mesh
