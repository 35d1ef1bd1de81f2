// Writing triangle meshes for viewers, slicers and 3D printers: binary STL and Wavefront OBJ.
// Coordinates are written as given (fedjoint's meshes are physical LPS millimetres, as ITK and
// DICOM); both files say so in a header ("SPACE=LPS", the convention 3D Slicer reads), because
// STL and OBJ themselves carry no coordinate system. Files appear atomically
// (common/base/atomic_file.h).
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/mesh/surface_mesh.h"

namespace fedjoint::common::mesh {

// Binary STL: 80-byte header, uint32 triangle count, then per triangle the unit normal, three
// vertices (float32, little-endian) and a zero uint16 attribute. `name` goes into the header.
absl::Status WriteBinaryStl(const TriangleMesh& mesh, const std::filesystem::path& path,
                            const std::string& name);

// OBJ: "v x y z" lines, then "f a b c" (1-based) lines; `name` is the object name ("o").
absl::Status WriteObj(const TriangleMesh& mesh, const std::filesystem::path& path,
                      const std::string& name);

// Reads a binary STL back (vertices are not shared between triangles: 3 per triangle). For tests
// and checks; DataLoss when the size does not match the triangle count.
absl::StatusOr<TriangleMesh> ReadBinaryStl(const std::filesystem::path& path);

}  // namespace fedjoint::common::mesh
