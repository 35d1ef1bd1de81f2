#include "common/tensors/torch_tensors.h"

#include <cstring>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tensors/digest.h"
#include "common/tensors/safetensors_writer.h"

namespace fedjoint::common::tensors {

absl::StatusOr<DType> ToDType(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Double:
      return DType::kF64;
    case c10::ScalarType::Float:
      return DType::kF32;
    case c10::ScalarType::Half:
      return DType::kF16;
    case c10::ScalarType::BFloat16:
      return DType::kBF16;
    case c10::ScalarType::Long:
      return DType::kI64;
    case c10::ScalarType::Int:
      return DType::kI32;
    case c10::ScalarType::Short:
      return DType::kI16;
    case c10::ScalarType::Char:
      return DType::kI8;
    case c10::ScalarType::Byte:
      return DType::kU8;
    case c10::ScalarType::Bool:
      return DType::kBool;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("torch dtype ", c10::toString(type), " has no container dtype"));
  }
}

c10::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kF64:
      return c10::ScalarType::Double;
    case DType::kF32:
      return c10::ScalarType::Float;
    case DType::kF16:
      return c10::ScalarType::Half;
    case DType::kBF16:
      return c10::ScalarType::BFloat16;
    case DType::kI64:
      return c10::ScalarType::Long;
    case DType::kI32:
      return c10::ScalarType::Int;
    case DType::kI16:
      return c10::ScalarType::Short;
    case DType::kI8:
      return c10::ScalarType::Char;
    case DType::kU8:
      return c10::ScalarType::Byte;
    case DType::kBool:
      return c10::ScalarType::Bool;
  }
  return c10::ScalarType::Undefined;  // unreachable
}

absl::StatusOr<TorchTensorRefs> MakeTensorRefs(const TensorMap& tensors) {
  TorchTensorRefs result;
  result.owned.reserve(tensors.size());
  result.refs.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    std::string where = absl::StrCat("tensor \"", name, "\"");
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat(where, " is undefined"));
    if (tensor.layout() != c10::kStrided) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " is not dense (layout ", c10::toString(tensor.layout()), ")"));
    }
    absl::StatusOr<DType> dtype = ToDType(tensor.scalar_type());
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", dtype.status().message()));
    }
    try {
      at::Tensor dense = tensor.detach().to(c10::kCPU).contiguous();
      const auto* bytes = static_cast<const std::byte*>(dense.data_ptr());
      result.refs.push_back(TensorRef{name, *dtype, dense.sizes().vec(),
                                      std::span<const std::byte>(bytes, dense.nbytes())});
      result.owned.push_back(std::move(dense));
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": cannot make a contiguous CPU copy: ", e.what_without_backtrace()));
    }
  }
  return result;
}

absl::StatusOr<std::string> ComputeDigest(const TensorMap& tensors) {
  ASSIGN_OR_RETURN(TorchTensorRefs refs, MakeTensorRefs(tensors));
  return ComputeDigest(refs.refs);
}

absl::StatusOr<std::string> SerializeSafetensors(const TensorMap& tensors,
                                                 const Metadata& metadata) {
  ASSIGN_OR_RETURN(TorchTensorRefs refs, MakeTensorRefs(tensors));
  return SerializeSafetensors(refs.refs, metadata);
}

absl::Status WriteSafetensors(const std::filesystem::path& path, const TensorMap& tensors,
                              const Metadata& metadata) {
  absl::StatusOr<TorchTensorRefs> refs = MakeTensorRefs(tensors);
  if (!refs.ok()) {
    return absl::Status(refs.status().code(),
                        absl::StrCat(path.string(), ": ", refs.status().message()));
  }
  return WriteSafetensors(path, refs->refs, metadata);
}

absl::StatusOr<TensorMap> ToTorch(const SafetensorsView& view) {
  TensorMap result;
  for (const TensorInfo& info : view.tensors()) {
    try {
      at::Tensor tensor =
          at::empty(info.shape, at::TensorOptions().dtype(ToScalarType(info.dtype)));
      std::span<const std::byte> bytes = view.data(info);
      // A copy, not from_blob: the result outlives the mapping, and the bytes of a foreign file
      // may be misaligned for the element type.
      if (!bytes.empty()) std::memcpy(tensor.data_ptr(), bytes.data(), bytes.size());
      result.emplace(info.name, std::move(tensor));
    } catch (const c10::Error& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat(view.source(), ": tensor \"", info.name,
                       "\": cannot allocate: ", e.what_without_backtrace()));
    }
  }
  return result;
}

absl::StatusOr<TensorMap> LoadSafetensors(const std::filesystem::path& path,
                                          const SafetensorsReadOptions& options,
                                          Metadata* metadata) {
  ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path, options));
  ASSIGN_OR_RETURN(TensorMap tensors, ToTorch(file.view()));
  if (metadata != nullptr) *metadata = file.metadata();
  return tensors;
}

}  // namespace fedjoint::common::tensors
