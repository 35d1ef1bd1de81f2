#include "common/tensors/dtype.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fedjoint::common::tensors {

std::size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
      return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return 1;
  }
  return 0;  // unreachable: every enumerator is handled above
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF64:
      return "F64";
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kI16:
      return "I16";
    case DType::kI8:
      return "I8";
    case DType::kU8:
      return "U8";
    case DType::kBool:
      return "BOOL";
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(std::string_view name) {
  std::string supported;
  for (DType dtype : kAllDTypes) {
    if (DTypeName(dtype) == name) return dtype;
    absl::StrAppend(&supported, supported.empty() ? "" : ", ", std::string(DTypeName(dtype)));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", std::string(name), "\" (supported: ", supported, ")"));
}

absl::StatusOr<uint64_t> ByteSize(DType dtype, std::span<const int64_t> shape) {
  uint64_t bytes = DTypeSize(dtype);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension ", i, " of the shape is negative (", shape[i], ")"));
    }
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(shape[i]), &bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the shape's byte size overflows 64 bits at dimension ", i));
    }
  }
  return bytes;
}

}  // namespace fedjoint::common::tensors
