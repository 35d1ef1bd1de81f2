#include "common/tensors/safetensors_file.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status.h"
#include "common/base/status_macros.h"
#include "common/tensors/digest.h"

namespace fedjoint::common::tensors {
namespace {

using Json = nlohmann::json;

std::string Quoted(std::string_view text) { return absl::StrCat("\"", std::string(text), "\""); }

// Parses the header, refusing duplicate keys at any depth: nlohmann silently keeps the last of two
// equal keys, which would let one tensor hide another.
absl::StatusOr<Json> ParseHeaderJson(std::string_view text, std::string_view source) {
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  bool duplicate_is_tensor = false;
  auto on_event = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && !duplicate &&
            !open_objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
          duplicate_is_tensor = open_objects.size() == 1;
        }
        break;
      default:
        break;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text.begin(), text.end(), on_event);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": header is not valid JSON: ", e.what()));
  }
  if (duplicate) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(source), ": header: ",
        duplicate_is_tensor
            ? absl::StrCat("tensor ", Quoted(*duplicate), " is defined twice")
            : absl::StrCat("key ", Quoted(*duplicate), " appears twice in one object")));
  }
  return header;
}

const char* JsonTypeName(const Json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number_float()) return "a non-integer number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  if (value.is_boolean()) return "a boolean";
  return "null";
}

// A JSON integer that fits in [0, 2^63): shapes and offsets.
std::optional<uint64_t> NonNegativeInteger(const Json& value) {
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(INT64_MAX)) return v;
    return std::nullopt;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return std::nullopt;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Validates one tensor entry's own fields (not yet its place among the others).
absl::StatusOr<TensorInfo> ParseEntry(const std::string& name, const Json& entry,
                                      uint64_t data_size, const std::string& where) {
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": entry is ", JsonTypeName(entry), ", expected an object"));
  }
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return absl::InvalidArgumentError(absl::StrCat(where, ": unexpected key ", Quoted(key),
                                                     " (expected dtype, shape, data_offsets)"));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing ", Quoted(key)));
    }
  }

  TensorInfo info;
  info.name = name;
  const Json& dtype = entry["dtype"];
  if (!dtype.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"dtype\" is ", JsonTypeName(dtype), ", expected a string"));
  }
  absl::StatusOr<DType> parsed_dtype = ParseDType(dtype.get<std::string>());
  if (!parsed_dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", parsed_dtype.status().message()));
  }
  info.dtype = *parsed_dtype;

  const Json& shape = entry["shape"];
  if (!shape.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"shape\" is ", JsonTypeName(shape), ", expected an array"));
  }
  for (std::size_t i = 0; i < shape.size(); ++i) {
    std::optional<uint64_t> dim = NonNegativeInteger(shape[i]);
    if (!dim) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"shape\" element ", i, " (",
                                                     shape[i].dump(),
                                                     ") is not a non-negative integer"));
    }
    info.shape.push_back(static_cast<int64_t>(*dim));
  }

  const Json& offsets = entry["data_offsets"];
  std::optional<uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = NonNegativeInteger(offsets[0]);
    end = NonNegativeInteger(offsets[1]);
  }
  if (!begin || !end) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"data_offsets\" is ", offsets.dump(),
                                                   ", expected [begin, end] integers >= 0"));
  }
  info.begin = *begin;
  info.end = *end;
  std::string offsets_text = absl::StrCat("data_offsets [", info.begin, ", ", info.end, "]");
  if (info.begin > info.end) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", offsets_text, " has begin > end"));
  }
  absl::StatusOr<uint64_t> bytes = ByteSize(info.dtype, info.shape);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", bytes.status().message()));
  }
  if (*bytes != info.num_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", std::string(DTypeName(info.dtype)), " shape ", ShapeText(info.shape),
        " needs ", *bytes, " bytes but ", offsets_text, " span ", info.num_bytes()));
  }
  if (info.end > data_size) {
    return absl::DataLossError(absl::StrCat(where, ": ", offsets_text,
                                            " ends beyond the data section of ", data_size,
                                            " bytes (truncated file?)"));
  }
  return info;
}

// The tensors must tile the data section exactly, as the safetensors reference implementation
// demands: a hole or trailing bytes would be content that no digest or reader looks at.
absl::Status CheckTiling(std::vector<TensorInfo>& by_offset, uint64_t data_size,
                         const std::string& source) {
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : by_offset) {
    if (info.begin < covered) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": tensor ", Quoted(info.name), ": data_offsets [", info.begin, ", ",
                       info.end, "] overlap tensor ", Quoted(previous->name), " at [",
                       previous->begin, ", ", previous->end, "]"));
    }
    if (info.begin > covered) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": data section bytes [", covered, ", ", info.begin,
                       ") belong to no tensor (gap before tensor ", Quoted(info.name), ")"));
    }
    covered = info.end;
    if (info.num_bytes() > 0) previous = &info;
  }
  if (covered != data_size) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", data_size - covered,
                                                   " trailing bytes after the last tensor (data "
                                                   "section is ",
                                                   data_size, " bytes, tensors end at ", covered,
                                                   ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint64_t> SafetensorsHeaderBytes(std::span<const std::byte> prefix,
                                                uint64_t file_size,
                                                const SafetensorsReadOptions& options,
                                                std::string_view source_name) {
  const std::string source(source_name);
  if (prefix.size() < kHeaderLengthBytes || file_size < kHeaderLengthBytes) {
    return absl::DataLossError(absl::StrCat(source, ": ",
                                            std::min<uint64_t>(prefix.size(), file_size),
                                            " bytes is shorter than the 8-byte header length "
                                            "(truncated file?)"));
  }
  uint64_t header_size = 0;
  for (std::size_t i = 0; i < kHeaderLengthBytes; ++i) {
    header_size |= static_cast<uint64_t>(std::to_integer<uint8_t>(prefix[i])) << (8 * i);
  }
  const uint64_t available = file_size - kHeaderLengthBytes;
  if (header_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": header length is 0"));
  }
  if (header_size > options.max_header_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(source, ": header length ", header_size,
                                                     " exceeds the limit of ",
                                                     options.max_header_bytes, " bytes"));
  }
  if (header_size > available) {
    return absl::DataLossError(absl::StrCat(source, ": header length ", header_size,
                                            " exceeds the ", available,
                                            " bytes after the length prefix (truncated file?)"));
  }
  return kHeaderLengthBytes + header_size;
}

absl::StatusOr<SafetensorsLayout> ParseSafetensorsLayout(std::span<const std::byte> header_bytes,
                                                         uint64_t file_size,
                                                         const SafetensorsReadOptions& options,
                                                         std::string_view source_name) {
  const std::string source(source_name);
  ASSIGN_OR_RETURN(uint64_t data_offset,
                   SafetensorsHeaderBytes(header_bytes, file_size, options, source));
  if (header_bytes.size() < data_offset) {
    return absl::DataLossError(absl::StrCat(source, ": ", header_bytes.size(),
                                            " bytes do not hold the header's ", data_offset));
  }
  std::string_view text(reinterpret_cast<const char*>(header_bytes.data()) + kHeaderLengthBytes,
                        data_offset - kHeaderLengthBytes);
  if (text.front() != '{') {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": header does not start with '{' (not a safetensors file?)"));
  }
  ASSIGN_OR_RETURN(Json header, ParseHeaderJson(text, source));
  if (!header.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": header is ", JsonTypeName(header), ", expected a JSON object"));
  }

  SafetensorsLayout layout;
  layout.data_offset = data_offset;
  const uint64_t data_size = file_size - data_offset;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataHeaderKey) {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": \"__metadata__\" is ",
                                                       JsonTypeName(value),
                                                       ", expected an object of strings"));
      }
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(source, ": metadata ", Quoted(meta_key),
                                                         " is ", JsonTypeName(meta_value),
                                                         ", expected a string"));
        }
        layout.metadata.emplace(meta_key, meta_value.get<std::string>());
      }
      continue;
    }
    std::string where = absl::StrCat(source, ": tensor ", Quoted(key));
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": empty tensor name"));
    ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(key, value, data_size, where));
    layout.tensors.push_back(std::move(info));
  }
  RETURN_IF_ERROR(CheckTiling(layout.tensors, data_size, source));
  std::sort(layout.tensors.begin(), layout.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });

  auto stored = layout.metadata.find(kDigestMetadataKey);
  if (stored == layout.metadata.end()) {
    if (options.require_digest) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": metadata has no ", Quoted(kDigestMetadataKey), " content digest (required)"));
    }
  } else if (!IsWellFormedDigest(stored->second)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": metadata ", Quoted(kDigestMetadataKey), " is ",
                     Quoted(stored->second), ", expected 64 lowercase hex digits"));
  } else {
    layout.stored_digest = stored->second;
  }
  return layout;
}

absl::StatusOr<SafetensorsView> SafetensorsView::Parse(std::span<const std::byte> buffer,
                                                       const SafetensorsReadOptions& options,
                                                       std::string_view source_name) {
  const std::string source(source_name);
  ASSIGN_OR_RETURN(SafetensorsLayout layout,
                   ParseSafetensorsLayout(buffer, buffer.size(), options, source));
  SafetensorsView view;
  view.source_ = source;
  view.data_section_ = buffer.subspan(layout.data_offset);
  view.tensors_ = std::move(layout.tensors);
  view.metadata_ = std::move(layout.metadata);
  if (options.verify_digest) {
    absl::StatusOr<std::string> computed = ComputeDigest(view.refs());
    if (!computed.ok()) return base::Annotate(computed.status(), source);
    if (!layout.stored_digest.empty() && layout.stored_digest != *computed) {
      return absl::DataLossError(absl::StrCat(source, ": content digest mismatch: metadata ",
                                              Quoted(kDigestMetadataKey), " is ",
                                              layout.stored_digest, " but the tensors hash to ",
                                              *computed, " (corrupted or modified)"));
    }
    view.digest_ = *std::move(computed);
  } else {
    view.digest_ = layout.stored_digest;
  }
  return view;
}

const TensorInfo* SafetensorsView::Find(std::string_view name) const {
  auto it =
      std::lower_bound(tensors_.begin(), tensors_.end(), name,
                       [](const TensorInfo& info, std::string_view n) { return info.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

absl::StatusOr<std::span<const std::byte>> SafetensorsView::data(std::string_view name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat(source_, ": no tensor ", Quoted(name)));
  }
  return data(*info);
}

absl::StatusOr<std::span<const std::byte>> SafetensorsView::TypedData(std::string_view name,
                                                                      DType dtype,
                                                                      std::size_t alignment) const {
  ASSIGN_OR_RETURN(std::span<const std::byte> bytes, data(name));
  const TensorInfo& info = *Find(name);
  if (info.dtype != dtype) {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": tensor ", Quoted(name), " is ",
                                                   std::string(DTypeName(info.dtype)), ", not ",
                                                   std::string(DTypeName(dtype))));
  }
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignment != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        source_, ": tensor ", Quoted(name), " is not ", alignment,
        "-byte aligned in memory (file from another writer?); copy its bytes instead"));
  }
  return bytes;
}

std::vector<TensorRef> SafetensorsView::refs() const {
  std::vector<TensorRef> refs;
  refs.reserve(tensors_.size());
  for (const TensorInfo& info : tensors_) {
    refs.push_back(TensorRef{info.name, info.dtype, info.shape, data(info)});
  }
  return refs;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::filesystem::path& path,
                                                      const SafetensorsReadOptions& options) {
  // Verifying reads every page anyway, so map them all up front (MAP_POPULATE); without
  // verification only the pages of tensors actually used are ever touched. (On a warm page cache
  // the two cost the same: bench/tensors_bench.cc.)
  ASSIGN_OR_RETURN(MappedFile mapping, MappedFile::Open(path, options.verify_digest));
  ASSIGN_OR_RETURN(SafetensorsView view,
                   SafetensorsView::Parse(mapping.bytes(), options, path.string()));
  return SafetensorsFile(std::move(mapping), std::move(view));
}

}  // namespace fedjoint::common::tensors
