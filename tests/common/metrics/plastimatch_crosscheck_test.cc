// Cross-check against plastimatch (Debian package "plastimatch"): both label volumes are written
// as MetaImage files, `plastimatch dice --all` scores them, and its Dice and boundary Hausdorff
// figures must match ours. plastimatch's "(boundary)" statistics use the same surface (voxels
// with a 6-neighbour outside) and exact distances, but aggregate differently from our HD95/ASSD
// (segmentation_metrics.h), so those figures are rebuilt from our directed distances the way
// plastimatch combines them and compared exactly.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/base/atomic_file.h"
#include "common/metrics/segmentation_metrics.h"
#include "common/metrics/surface_distance.h"

namespace fedjoint::common::metrics {
namespace {

namespace fs = std::filesystem;

// A binary uint8 [k, j, i] mask as MetaImage: text header, then the raw voxels (i fastest).
void WriteMha(const fs::path& path, const at::Tensor& mask, const std::array<double, 3>& spacing) {
  const std::string header = fmt::format(
      "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
      "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\n"
      "ElementSpacing = {} {} {}\nDimSize = {} {} {}\nElementType = MET_UCHAR\n"
      "ElementDataFile = LOCAL\n",
      spacing[0], spacing[1], spacing[2], mask.size(2), mask.size(1), mask.size(0));
  const at::Tensor bytes = mask.to(torch::kUInt8).contiguous();
  std::string contents = header;
  contents.append(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()),
                  static_cast<size_t>(bytes.numel()));
  ASSERT_TRUE(base::WriteFileAtomically(path, contents).ok()) << path;
}

std::string RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  ::pclose(pipe);
  return output;
}

// "DICE:      0.778150" and "Hausdorff distance (boundary) = 2.692582" → key → value.
std::map<std::string, double> ParsePlastimatch(const std::string& output) {
  std::map<std::string, double> values;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    size_t cut = line.find(" = ");
    size_t skip = 3;
    if (cut == std::string::npos) {
      cut = line.find(':');
      skip = 1;
    }
    if (cut == std::string::npos) continue;
    try {
      values[line.substr(0, cut)] = std::stod(line.substr(cut + skip));
    } catch (const std::exception&) {
    }
  }
  return values;
}

// plastimatch's percentile: the order statistic of 0-based rank floor(0.95·n − 1), capped.
double PlastimatchPercentile(std::vector<double> d) {
  const int64_t n = static_cast<int64_t>(d.size());
  int64_t rank = static_cast<int64_t>(std::floor(0.95 * static_cast<double>(n) - 1));
  rank = std::clamp<int64_t>(rank, 0, n - 1);
  std::nth_element(d.begin(), d.begin() + rank, d.end());
  return d[rank];
}

double Mean(const std::vector<double>& d) {
  return std::accumulate(d.begin(), d.end(), 0.0) / static_cast<double>(d.size());
}

// Ellipsoid with centre c and radii r in mm, on a grid of spacing s (label value `label`).
at::Tensor Ellipsoid(const std::array<int64_t, 3>& size, const std::array<double, 3>& s,
                     const std::array<double, 3>& c, const std::array<double, 3>& r) {
  const auto options = torch::TensorOptions().dtype(torch::kDouble);
  const at::Tensor k = torch::arange(size[2], options).reshape({-1, 1, 1}) * s[2];
  const at::Tensor j = torch::arange(size[1], options).reshape({1, -1, 1}) * s[1];
  const at::Tensor i = torch::arange(size[0], options).reshape({1, 1, -1}) * s[0];
  const at::Tensor q =
      ((i - c[0]) / r[0]).square() + ((j - c[1]) / r[1]).square() + ((k - c[2]) / r[2]).square();
  return (q <= 1).to(torch::kUInt8);
}

TEST(PlastimatchCrossCheckTest, DiceAndBoundaryHausdorffAgree) {
  if (std::system("command -v plastimatch >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "plastimatch is not installed (Debian: apt-get install plastimatch); "
                    "cross-check skipped";
  }
  const fs::path dir =
      fs::temp_directory_path() / ("fedjoint_plastimatch_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);

  // Two structures, anisotropic voxels (0.6 x 0.8 x 2.5 mm), nothing touching the image border.
  const std::array<int64_t, 3> size = {28, 24, 14};
  const std::array<double, 3> spacing = {0.6, 0.8, 2.5};
  const at::Tensor truth1 = Ellipsoid(size, spacing, {8, 9, 16}, {5, 6, 10});
  const at::Tensor pred1 = Ellipsoid(size, spacing, {9, 10, 17}, {6, 5.5, 9});
  const at::Tensor truth2 = Ellipsoid(size, spacing, {11, 12, 14}, {3, 4, 6}) * (1 - truth1);
  const at::Tensor pred2 = Ellipsoid(size, spacing, {11.5, 12, 15}, {3.5, 3.5, 6}) * (1 - pred1);

  data::Volume truth, pred;
  truth.voxels = truth1 + 2 * truth2;
  pred.voxels = pred1 + 2 * pred2;
  truth.geometry.size = pred.geometry.size = size;
  truth.geometry.spacing = pred.geometry.spacing = spacing;
  const std::vector<Structure> structures = {{1, "femur"}, {2, "patella"}};
  const auto ours = ComputeSegmentationMetrics(pred, truth, structures);
  ASSERT_TRUE(ours.ok()) << ours.status();

  for (size_t s = 0; s < structures.size(); ++s) {
    SCOPED_TRACE(structures[s].name);
    const at::Tensor t = truth.voxels.eq(structures[s].label).to(torch::kUInt8).contiguous();
    const at::Tensor p = pred.voxels.eq(structures[s].label).to(torch::kUInt8).contiguous();
    const fs::path truth_path = dir / (structures[s].name + "_truth.mha");
    const fs::path pred_path = dir / (structures[s].name + "_pred.mha");
    WriteMha(truth_path, t, spacing);
    WriteMha(pred_path, p, spacing);
    const std::string output = RunCommand(
        fmt::format("plastimatch dice --all '{}' '{}'", truth_path.string(), pred_path.string()));
    const std::map<std::string, double> theirs = ParsePlastimatch(output);
    ASSERT_TRUE(theirs.count("DICE") && theirs.count("Hausdorff distance (boundary)") &&
                theirs.count("Avg average Hausdorff distance (boundary)") &&
                theirs.count("Max average Hausdorff distance (boundary)") &&
                theirs.count("Percent (0.95) Hausdorff distance (boundary)"))
        << "unexpected plastimatch output:\n"
        << output;

    const StructureMetrics& m = (*ours)[s];
    const std::span<const uint8_t> pv(p.data_ptr<uint8_t>(), static_cast<size_t>(p.numel()));
    const std::span<const uint8_t> tv(t.data_ptr<uint8_t>(), static_cast<size_t>(t.numel()));
    const SurfaceDistances d = ComputeSurfaceDistances(tv, pv, size, spacing);
    const double avg_avg = 0.5 * (Mean(d.a_to_b) + Mean(d.b_to_a));
    const double max_avg = std::max(Mean(d.a_to_b), Mean(d.b_to_a));
    const double pct = 0.5 * (PlastimatchPercentile(d.a_to_b) + PlastimatchPercentile(d.b_to_a));

    // plastimatch prints 6 decimals of float values.
    EXPECT_NEAR(m.dice, theirs.at("DICE"), 1e-6);
    EXPECT_NEAR(m.hd, theirs.at("Hausdorff distance (boundary)"), 2e-6);
    EXPECT_NEAR(avg_avg, theirs.at("Avg average Hausdorff distance (boundary)"), 2e-6);
    EXPECT_NEAR(max_avg, theirs.at("Max average Hausdorff distance (boundary)"), 2e-6);
    EXPECT_NEAR(pct, theirs.at("Percent (0.95) Hausdorff distance (boundary)"), 2e-6);
    std::cout << fmt::format(
        "[plastimatch] {}: Dice ours {:.6f} theirs {:.6f} | HD ours {:.6f} theirs {:.6f} | "
        "avg-of-directed-means ours {:.6f} theirs {:.6f} | plastimatch-style p95 ours {:.6f} "
        "theirs {:.6f} | our HD95 (union p95) {:.6f}, ASSD (union mean) {:.6f}\n",
        structures[s].name, m.dice, theirs.at("DICE"), m.hd,
        theirs.at("Hausdorff distance (boundary)"), avg_avg,
        theirs.at("Avg average Hausdorff distance (boundary)"), pct,
        theirs.at("Percent (0.95) Hausdorff distance (boundary)"), m.hd95, m.assd);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fedjoint::common::metrics
