#include "common/tensors/digest.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedjoint::common::tensors {
namespace {

// Domain separation: a digest of something else can never equal a tensor-content digest.
constexpr std::string_view kDigestDomain{"fedjoint-tensors-v1\0", 20};

}  // namespace

DigestBuilder::DigestBuilder() = default;
DigestBuilder::~DigestBuilder() = default;

void DigestBuilder::Update(const void* data, std::size_t size) { sha_.Update(data, size); }

void DigestBuilder::UpdateU64(uint64_t value) {
  std::array<unsigned char, 8> bytes;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * i));
  Update(bytes.data(), bytes.size());
}

void DigestBuilder::Begin(uint64_t num_tensors) {
  Update(kDigestDomain.data(), kDigestDomain.size());
  UpdateU64(num_tensors);
}

void DigestBuilder::BeginTensor(std::string_view name, DType dtype, std::span<const int64_t> shape,
                                uint64_t data_bytes) {
  UpdateU64(name.size());
  Update(name.data(), name.size());
  std::string_view dtype_name = DTypeName(dtype);
  UpdateU64(dtype_name.size());
  Update(dtype_name.data(), dtype_name.size());
  UpdateU64(shape.size());
  for (int64_t dim : shape) UpdateU64(static_cast<uint64_t>(dim));
  UpdateU64(data_bytes);
}

absl::StatusOr<std::string> DigestBuilder::HexDigest() {
  absl::StatusOr<base::Sha256Digest> digest = sha_.Finish();
  if (!digest.ok()) return digest.status();
  return base::DigestToHex(*digest);
}

absl::Status ValidateTensorRefs(std::span<const TensorRef> tensors) {
  std::set<std::string_view> names;
  for (const TensorRef& tensor : tensors) {
    if (tensor.name.empty()) return absl::InvalidArgumentError("a tensor has an empty name");
    if (tensor.name == kMetadataHeaderKey) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor name \"", tensor.name, "\" is reserved for the metadata"));
    }
    if (!names.insert(tensor.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", tensor.name, "\" appears more than once"));
    }
    absl::StatusOr<uint64_t> bytes = ByteSize(tensor.dtype, tensor.shape);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", tensor.name, "\": ", bytes.status().message()));
    }
    if (*bytes != tensor.data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", tensor.name, "\": ", std::string(DTypeName(tensor.dtype)),
                       " shape [", absl::StrJoin(tensor.shape, ", "), "] needs ", *bytes,
                       " bytes but ", tensor.data.size(), " were given"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ComputeDigest(std::span<const TensorRef> tensors) {
  if (absl::Status status = ValidateTensorRefs(tensors); !status.ok()) return status;
  std::vector<const TensorRef*> sorted;
  sorted.reserve(tensors.size());
  for (const TensorRef& tensor : tensors) sorted.push_back(&tensor);
  // std::string compares like memcmp (unsigned bytes): the UTF-8 bytewise order of the definition.
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorRef* a, const TensorRef* b) { return a->name < b->name; });

  DigestBuilder sha;
  sha.Begin(sorted.size());
  for (const TensorRef* tensor : sorted) {
    sha.BeginTensor(tensor->name, tensor->dtype, tensor->shape, tensor->data.size());
    sha.Update(tensor->data.data(), tensor->data.size());
  }
  return sha.HexDigest();
}

bool IsWellFormedDigest(std::string_view digest) {
  return digest.size() == 64 && std::all_of(digest.begin(), digest.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace fedjoint::common::tensors
