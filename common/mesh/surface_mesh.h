// The closed surface of one structure of a label volume, as a triangle mesh in physical (LPS, mm)
// coordinates, for viewing and printing a segmented bone.
//
// Method: marching tetrahedra on the voxel centres. Each cube of 8 neighbouring voxel centres is
// cut into the 6 tetrahedra of the Kuhn (Freudenthal) triangulation; a tetrahedron whose corners
// are partly inside emits one triangle or a quad (two triangles) through the midpoints of its
// mixed edges. Why tetrahedra rather than marching cubes: the Kuhn triangulation is consistent
// across cube faces and a tetrahedron has no ambiguous case, so the surface has no holes and every
// edge belongs to exactly two triangles; marching cubes needs a disambiguation table to promise
// that. Why midpoints: the mask is binary, so there is nothing to interpolate, and a midpoint is
// where the voxel faces are, which keeps the enclosed volume close to voxel count x voxel volume.
//
// The mask is padded by one background voxel on every side, so a structure touching the volume's
// border is still closed. Triangles are wound counter-clockwise seen from outside (normals point
// out), decided per triangle from the inside and outside corners in physical space, so a
// direction matrix with a reflection (det < 0) still gives outward normals.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/volume.h"

namespace fedjoint::common::mesh {

struct TriangleMesh {
  std::vector<std::array<double, 3>> vertices;    // physical LPS coordinates, mm
  std::vector<std::array<int32_t, 3>> triangles;  // vertex indices, counter-clockwise from outside

  bool empty() const { return triangles.empty(); }
};

// The surface of the voxels whose value is `label`. `voxels` holds geometry.NumVoxels() bytes,
// i fastest (the layout of data::Volume). An absent label gives an empty mesh. InvalidArgument
// when the sizes disagree or the geometry is invalid.
absl::StatusOr<TriangleMesh> MeshLabel(std::span<const uint8_t> voxels,
                                       const data::Geometry& geometry, uint8_t label);

// Signed volume enclosed (mm^3; positive when the normals point outward): the sum over triangles
// of det(v0, v1, v2) / 6.
double SignedVolume(const TriangleMesh& mesh);

// Unit normal of triangle t (zero for a degenerate triangle).
std::array<double, 3> TriangleNormal(const TriangleMesh& mesh, size_t t);

}  // namespace fedjoint::common::mesh
