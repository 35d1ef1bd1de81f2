// Tiny volumes built in code for the data tests: a 7x5x3 grid whose direction both permutes and
// flips the axes, with anisotropic spacing and a non-zero origin, so that any mix-up of axes,
// signs or index order shows up as a wrong voxel or a wrong coordinate.
#pragma once

#include <unistd.h>

#include <array>
#include <filesystem>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/data/volume.h"

namespace fedjoint::common::data::test_util {

// Column i points anterior (-y), column j superior (+z), column k right (-x): a proper rotation
// (det +1), so NIfTI's qform can hold it exactly.
inline Geometry TestGeometry() {
  Geometry g;
  g.size = {7, 5, 3};
  g.spacing = {0.7, 1.3, 2.5};
  g.origin = {12.5, -30.25, 7.0};
  g.direction = {0,  0, -1,  //
                 -1, 0, 0,   //
                 0,  1, 0};
  return g;
}

// Float image whose voxel values are their linear index (i + 7 j + 35 k) plus a fraction, so each
// voxel is unique and float round trips are checked on non-integers.
inline Volume TestImage() {
  Geometry g = TestGeometry();
  at::Tensor voxels =
      at::arange(g.NumVoxels(), at::kFloat).add_(0.25).view({g.size[2], g.size[1], g.size[0]});
  return Volume{voxels.contiguous(), g};
}

// Label volume of the given integer dtype: linear index modulo `modulus`, shifted by `offset`.
inline Volume TestLabels(at::ScalarType dtype, int64_t modulus = 4, int64_t offset = 0) {
  Geometry g = TestGeometry();
  at::Tensor voxels = at::arange(g.NumVoxels(), at::kLong)
                          .remainder(modulus)
                          .add_(offset)
                          .to(dtype)
                          .view({g.size[2], g.size[1], g.size[0]});
  return Volume{voxels.contiguous(), g};
}

// A fresh empty folder per test, removed at the end.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    dir_ = std::filesystem::temp_directory_path() /
           ("fedjoint_data_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

}  // namespace fedjoint::common::data::test_util
