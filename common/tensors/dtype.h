// Element types of the weights container, spelled as safetensors spells them ("F32", "BF16", ...).
// All multi-byte types are little-endian on disk; fedjoint only builds for little-endian hosts.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"

namespace fedjoint::common::tensors {

static_assert(std::endian::native == std::endian::little,
              "the tensor container stores little-endian data and maps it without byte swapping");

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// Every supported dtype, in a fixed order (for tests and error messages).
inline constexpr DType kAllDTypes[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16,
                                       DType::kI64, DType::kI32, DType::kI16, DType::kI8,
                                       DType::kU8,  DType::kBool};

// Bytes per element (BOOL is one byte holding 0 or 1).
std::size_t DTypeSize(DType dtype);

// The safetensors spelling: "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL".
std::string_view DTypeName(DType dtype);

// Inverse of DTypeName (case-sensitive, as safetensors is). The error lists the supported names.
absl::StatusOr<DType> ParseDType(std::string_view name);

// numel(shape) × DTypeSize(dtype), refusing negative dimensions and 64-bit overflow (the error
// says which). An empty shape is a scalar: one element.
absl::StatusOr<uint64_t> ByteSize(DType dtype, std::span<const int64_t> shape);

// Maps a C++ element type to its dtype, for typed access to raw data (F16/BF16 have no C++ type).
template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kF64;
};
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kI64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct DTypeOf<int16_t> {
  static constexpr DType value = DType::kI16;
};
template <>
struct DTypeOf<int8_t> {
  static constexpr DType value = DType::kI8;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::kU8;
};

}  // namespace fedjoint::common::tensors
