#include "common/tensors/safetensors_writer.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/atomic_file.h"
#include "common/base/status.h"
#include "common/base/status_macros.h"
#include "common/tensors/digest.h"

namespace fedjoint::common::tensors {
namespace {

// Small tensors are gathered into blocks of this size; larger ones go straight to write(2).
constexpr std::size_t kWriteBlockBytes = 4u << 20;

std::string LengthPrefix(uint64_t length) {
  std::string bytes(kHeaderLengthBytes, '\0');
  for (std::size_t i = 0; i < kHeaderLengthBytes; ++i) {
    bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  }
  return bytes;
}

}  // namespace

absl::StatusOr<SafetensorsEncoding> EncodeSafetensors(std::span<const TensorRef> tensors,
                                                      const Metadata& metadata) {
  SafetensorsEncoding encoding;
  ASSIGN_OR_RETURN(encoding.digest, ComputeDigest(tensors));  // validates the tensors too

  // Largest elements first keeps every tensor aligned to its element size in the data section
  // (which itself starts 8-aligned); names break ties so the layout is reproducible.
  std::vector<const TensorRef*> order;
  order.reserve(tensors.size());
  for (const TensorRef& tensor : tensors) order.push_back(&tensor);
  std::sort(order.begin(), order.end(), [](const TensorRef* a, const TensorRef* b) {
    std::size_t size_a = DTypeSize(a->dtype), size_b = DTypeSize(b->dtype);
    return size_a != size_b ? size_a > size_b : a->name < b->name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json& meta = header[std::string(kMetadataHeaderKey)];
  meta = nlohmann::ordered_json::object();
  for (const auto& [key, value] : metadata) {
    if (key != kDigestMetadataKey) meta[key] = value;
  }
  meta[std::string(kDigestMetadataKey)] = encoding.digest;

  uint64_t offset = 0;
  encoding.segments.reserve(order.size());
  for (const TensorRef* tensor : order) {
    uint64_t end = offset + tensor->data.size();
    header[tensor->name] = {{"dtype", DTypeName(tensor->dtype)},
                            {"shape", tensor->shape},
                            {"data_offsets", {offset, end}}};
    encoding.segments.push_back(tensor->data);
    offset = end;
  }

  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot encode the header (tensor names and metadata must be UTF-8): ", e.what()));
  }
  // Pad with spaces (valid JSON whitespace) so the data section starts 8-aligned.
  json.append(
      (kDataAlignment - (kHeaderLengthBytes + json.size()) % kDataAlignment) % kDataAlignment, ' ');
  if (json.size() > kSafetensorsMaxHeaderBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the header would be ", json.size(),
                                                     " bytes, more than safetensors readers ",
                                                     "accept (", kSafetensorsMaxHeaderBytes, ")"));
  }
  encoding.header = LengthPrefix(json.size());
  encoding.header += json;
  encoding.total_size = encoding.header.size() + offset;
  return encoding;
}

absl::StatusOr<std::string> SerializeSafetensors(std::span<const TensorRef> tensors,
                                                 const Metadata& metadata) {
  ASSIGN_OR_RETURN(SafetensorsEncoding encoding, EncodeSafetensors(tensors, metadata));
  std::string out;
  out.reserve(encoding.total_size);
  out += encoding.header;
  for (std::span<const std::byte> segment : encoding.segments) {
    out.append(reinterpret_cast<const char*>(segment.data()), segment.size());
  }
  return out;
}

absl::Status WriteSafetensors(const std::filesystem::path& path, std::span<const TensorRef> tensors,
                              const Metadata& metadata) {
  absl::StatusOr<SafetensorsEncoding> encoding = EncodeSafetensors(tensors, metadata);
  if (!encoding.ok()) return base::Annotate(encoding.status(), path.string());
  ASSIGN_OR_RETURN(base::AtomicFileWriter writer, base::AtomicFileWriter::Open(path));

  // Gather the header and small tensors into big blocks; hand large tensors to the kernel as they
  // are, so a model of hundreds of MB costs few system calls and no extra copy.
  std::vector<std::byte> block;
  block.reserve(kWriteBlockBytes);
  auto flush = [&]() -> absl::Status {
    if (block.empty()) return absl::OkStatus();
    absl::Status status = writer.Write(std::span<const std::byte>(block));
    block.clear();
    return status;
  };
  auto append = [&](std::span<const std::byte> bytes) -> absl::Status {
    if (block.size() + bytes.size() > kWriteBlockBytes) RETURN_IF_ERROR(flush());
    if (bytes.size() >= kWriteBlockBytes) return writer.Write(bytes);
    block.insert(block.end(), bytes.begin(), bytes.end());
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(append(std::as_bytes(std::span<const char>(encoding->header))));
  for (std::span<const std::byte> segment : encoding->segments) RETURN_IF_ERROR(append(segment));
  RETURN_IF_ERROR(flush());
  return writer.Commit();
}

}  // namespace fedjoint::common::tensors
