#include "common/mesh/mesh_io.h"

#include <bit>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "common/base/atomic_file.h"

namespace fedjoint::common::mesh {
namespace {

static_assert(std::endian::native == std::endian::little,
              "binary STL is little-endian; this writer copies host floats as they are");

constexpr size_t kStlHeaderBytes = 80;
constexpr size_t kStlTriangleBytes = 50;  // 12 floats + uint16 attribute
// An STL larger than this is not a bone surface (and reading it could exhaust memory).
constexpr uint64_t kMaxStlBytes = uint64_t{2} << 30;

void PutFloat(std::string& out, double value) {
  const float f = static_cast<float>(value);
  char bytes[4];
  std::memcpy(bytes, &f, 4);
  out.append(bytes, 4);
}

float GetFloat(const char* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

// Streams `text` chunks through the atomic writer: a mesh of a large bone is tens of MB.
class ChunkedWriter {
 public:
  explicit ChunkedWriter(base::AtomicFileWriter writer) : writer_(std::move(writer)) {}
  std::string& buffer() { return buffer_; }
  absl::Status MaybeFlush() {
    if (buffer_.size() < (1u << 20)) return absl::OkStatus();
    return Flush();
  }
  absl::Status Commit() {
    if (absl::Status s = Flush(); !s.ok()) return s;
    return writer_.Commit();
  }

 private:
  absl::Status Flush() {
    absl::Status s = writer_.Write(buffer_);
    buffer_.clear();
    return s;
  }
  base::AtomicFileWriter writer_;
  std::string buffer_;
};

}  // namespace

absl::Status WriteBinaryStl(const TriangleMesh& mesh, const std::filesystem::path& path,
                            const std::string& name) {
  if (mesh.triangles.size() > UINT32_MAX) {
    return absl::ResourceExhaustedError(fmt::format("{}: {} triangles do not fit a binary STL",
                                                    path.string(), mesh.triangles.size()));
  }
  absl::StatusOr<base::AtomicFileWriter> opened = base::AtomicFileWriter::Open(path);
  if (!opened.ok()) return opened.status();
  ChunkedWriter out(std::move(*opened));
  std::string header = fmt::format("fedjoint surface {} SPACE=LPS mm", name);
  header.resize(kStlHeaderBytes, ' ');
  // A header starting with "solid" makes some readers take the file for ASCII STL.
  if (header.compare(0, 5, "solid") == 0) header[0] = 'S';
  out.buffer() += header;
  const auto count = static_cast<uint32_t>(mesh.triangles.size());
  char count_bytes[4];
  std::memcpy(count_bytes, &count, 4);
  out.buffer().append(count_bytes, 4);
  for (size_t t = 0; t < mesh.triangles.size(); ++t) {
    for (double v : TriangleNormal(mesh, t)) PutFloat(out.buffer(), v);
    for (int32_t index : mesh.triangles[t]) {
      for (double v : mesh.vertices[static_cast<size_t>(index)]) PutFloat(out.buffer(), v);
    }
    out.buffer().append(2, '\0');
    if (absl::Status s = out.MaybeFlush(); !s.ok()) return s;
  }
  return out.Commit();
}

absl::Status WriteObj(const TriangleMesh& mesh, const std::filesystem::path& path,
                      const std::string& name) {
  absl::StatusOr<base::AtomicFileWriter> opened = base::AtomicFileWriter::Open(path);
  if (!opened.ok()) return opened.status();
  ChunkedWriter out(std::move(*opened));
  out.buffer() += fmt::format(
      "# fedjoint surface of {}: {} vertices, {} triangles\n# SPACE=LPS, millimetres\no {}\n", name,
      mesh.vertices.size(), mesh.triangles.size(), name);
  for (const auto& v : mesh.vertices) {
    out.buffer() += fmt::format("v {:.6f} {:.6f} {:.6f}\n", v[0], v[1], v[2]);
    if (absl::Status s = out.MaybeFlush(); !s.ok()) return s;
  }
  for (const auto& t : mesh.triangles) {
    out.buffer() += fmt::format("f {} {} {}\n", t[0] + 1, t[1] + 1, t[2] + 1);
    if (absl::Status s = out.MaybeFlush(); !s.ok()) return s;
  }
  return out.Commit();
}

absl::StatusOr<TriangleMesh> ReadBinaryStl(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = base::ReadSmallFile(path, kMaxStlBytes);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() < kStlHeaderBytes + 4) {
    return absl::DataLossError(fmt::format("{}: {} bytes, shorter than a binary STL header",
                                           path.string(), bytes->size()));
  }
  uint32_t count;
  std::memcpy(&count, bytes->data() + kStlHeaderBytes, 4);
  const uint64_t expected = kStlHeaderBytes + 4 + uint64_t{count} * kStlTriangleBytes;
  if (bytes->size() != expected) {
    return absl::DataLossError(fmt::format("{}: {} bytes, but {} triangles need {}", path.string(),
                                           bytes->size(), count, expected));
  }
  TriangleMesh mesh;
  mesh.vertices.reserve(size_t{count} * 3);
  mesh.triangles.reserve(count);
  const char* p = bytes->data() + kStlHeaderBytes + 4;
  for (uint32_t t = 0; t < count; ++t, p += kStlTriangleBytes) {
    std::array<int32_t, 3> tri;
    for (int v = 0; v < 3; ++v) {
      const char* q = p + 12 + v * 12;
      tri[v] = static_cast<int32_t>(mesh.vertices.size());
      mesh.vertices.push_back({GetFloat(q), GetFloat(q + 4), GetFloat(q + 8)});
    }
    mesh.triangles.push_back(tri);
  }
  return mesh;
}

}  // namespace fedjoint::common::mesh
