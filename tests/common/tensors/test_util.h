// Shared helpers for the tensors tests: a temp-dir fixture, owned sample tensors of every dtype
// with known values, and byte-level file editing for the corruption cases.
#pragma once

#include <unistd.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/tensors/safetensors.h"

namespace fedjoint::common::tensors::testing {

namespace fs = std::filesystem;

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("fedjoint_tensors_" + std::to_string(::getpid()) + "_" +
                                        info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Names of everything in the directory (to spot leftover temporary files).
  std::vector<std::string> DirEntries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

// A tensor that owns its bytes; `values` are the elements as doubles (bools as 0/1) so tests and
// the Python cross-check can compare decoded values, not only bytes.
struct OwnedTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<double> values;
  std::vector<std::byte> bytes;

  TensorRef ref() const { return TensorRef{name, dtype, shape, bytes}; }
};

// IEEE half bits of a float that is exactly representable as a normal half (or zero).
inline uint16_t HalfBits(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  if ((bits & 0x7fffffff) == 0) return sign;
  int exponent = static_cast<int>((bits >> 23) & 0xff) - 127 + 15;
  return static_cast<uint16_t>(sign | (exponent << 10) | ((bits >> 13) & 0x3ff));
}

template <typename T>
void AppendLE(std::vector<std::byte>& out, T value) {
  std::byte raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.insert(out.end(), raw, raw + sizeof(T));
}

// Little-endian encoding of `values` (exactly representable in `dtype`; bools as 0/1).
inline std::vector<std::byte> Encode(DType dtype, const std::vector<double>& values) {
  std::vector<std::byte> out;
  for (double v : values) {
    switch (dtype) {
      case DType::kF64:
        AppendLE<double>(out, v);
        break;
      case DType::kF32:
        AppendLE<float>(out, static_cast<float>(v));
        break;
      case DType::kF16:
        AppendLE<uint16_t>(out, HalfBits(static_cast<float>(v)));
        break;
      case DType::kBF16:
        AppendLE<uint16_t>(
            out, static_cast<uint16_t>(std::bit_cast<uint32_t>(static_cast<float>(v)) >> 16));
        break;
      case DType::kI64:
        AppendLE<int64_t>(out, static_cast<int64_t>(v));
        break;
      case DType::kI32:
        AppendLE<int32_t>(out, static_cast<int32_t>(v));
        break;
      case DType::kI16:
        AppendLE<int16_t>(out, static_cast<int16_t>(v));
        break;
      case DType::kI8:
        AppendLE<int8_t>(out, static_cast<int8_t>(v));
        break;
      case DType::kU8:
      case DType::kBool:
        AppendLE<uint8_t>(out, static_cast<uint8_t>(v));
        break;
    }
  }
  return out;
}

inline OwnedTensor FromValues(std::string name, DType dtype, std::vector<int64_t> shape,
                              std::vector<double> values) {
  std::vector<std::byte> bytes = Encode(dtype, values);
  return OwnedTensor{std::move(name), dtype, std::move(shape), std::move(values), std::move(bytes)};
}

// Elements (i - 3) * step for floats (exactly representable in every floating dtype), i - 3 for
// signed integers, i * 7 % 256 for U8, i % 2 for BOOL.
inline OwnedTensor MakeTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                              double step = 0.5) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  std::vector<double> values;
  for (int64_t i = 0; i < numel; ++i) {
    double x = static_cast<double>(i);
    switch (dtype) {
      case DType::kF64:
      case DType::kF32:
      case DType::kF16:
      case DType::kBF16:
        values.push_back((x - 3) * step);
        break;
      case DType::kU8:
        values.push_back(static_cast<double>(i * 7 % 256));
        break;
      case DType::kBool:
        values.push_back(static_cast<double>(i % 2));
        break;
      default:
        values.push_back(x - 3);
        break;
    }
  }
  return FromValues(std::move(name), dtype, std::move(shape), std::move(values));
}

// For every dtype: a [2, 3] matrix, a scalar [] and a zero-size [0, 4] tensor.
inline std::vector<OwnedTensor> EveryDTypeTensors() {
  std::vector<OwnedTensor> tensors;
  for (DType dtype : kAllDTypes) {
    std::string base = "t_" + std::string(DTypeName(dtype));
    tensors.push_back(MakeTensor(base + ".matrix", dtype, {2, 3}));
    tensors.push_back(MakeTensor(base + ".scalar", dtype, {}));
    tensors.push_back(MakeTensor(base + ".empty", dtype, {0, 4}));
  }
  return tensors;
}

inline std::vector<TensorRef> Refs(const std::vector<OwnedTensor>& tensors) {
  std::vector<TensorRef> refs;
  for (const OwnedTensor& t : tensors) refs.push_back(t.ref());
  return refs;
}

inline std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline uint64_t HeaderLength(const std::string& file) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(file[i])) << (8 * i);
  return n;
}

inline void SetHeaderLength(std::string& file, uint64_t n) {
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((n >> (8 * i)) & 0xff);
}

inline std::string HeaderText(const std::string& file) {
  return file.substr(8, HeaderLength(file));
}

// Replaces the header with `json` (padded to keep the data 8-aligned), keeping the data section.
inline std::string ReplaceHeader(const std::string& file, std::string json) {
  std::string data = file.substr(8 + HeaderLength(file));
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  SetHeaderLength(out, json.size());
  return out + json + data;
}

// Parses the header, lets `edit` change it, and re-encodes it in front of the same data section.
inline std::string EditHeader(const std::string& file,
                              const std::function<void(nlohmann::ordered_json&)>& edit) {
  nlohmann::ordered_json header = nlohmann::ordered_json::parse(HeaderText(file));
  edit(header);
  return ReplaceHeader(file, header.dump());
}

}  // namespace fedjoint::common::tensors::testing
