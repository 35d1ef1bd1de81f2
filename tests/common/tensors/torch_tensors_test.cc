// The at::Tensor adapter: round trips for the dtypes the model uses, non-contiguous inputs, and
// agreement of digests between torch tensors and files.
#include "common/tensors/torch_tensors.h"

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/tensors/digest.h"
#include "common/tensors/safetensors_writer.h"
#include "tests/common/tensors/test_util.h"

namespace fedjoint::common::tensors {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;

class TorchTensorsTest : public testing::TempDirTest {};

TEST(TorchDTypeTest, MapsEveryDTypeBothWays) {
  for (DType dtype : kAllDTypes) {
    auto back = ToDType(ToScalarType(dtype));
    ASSERT_TRUE(back.ok()) << DTypeName(dtype);
    EXPECT_EQ(*back, dtype);
    EXPECT_EQ(c10::elementSize(ToScalarType(dtype)), DTypeSize(dtype));
  }
  auto complex = ToDType(c10::ScalarType::ComplexFloat);
  EXPECT_EQ(complex.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(complex.status().message()), HasSubstr("ComplexFloat"));
}

TEST_F(TorchTensorsTest, RoundTripsModelDTypesIncludingNonContiguousInputs) {
  torch::manual_seed(7);
  at::Tensor base = torch::randn({4, 6});
  TensorMap tensors{
      {"enc.weight", base.t()},  // non-contiguous (transposed)
      {"enc.every_other", base.index({torch::indexing::Slice(), torch::indexing::Slice(0, 6, 2)})},
      {"enc.expanded", torch::arange(3, torch::kFloat).expand({2, 3})},  // stride 0
      {"half", torch::randn({3, 5}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16).transpose(0, 2)},
      {"bn.num_batches_tracked", torch::tensor(42, torch::kLong)},  // scalar
      {"indices", torch::arange(-5, 5, torch::kLong)},
      {"label_map", torch::randint(0, 255, {3, 4}, torch::kLong).to(torch::kByte)},
      {"mask", torch::rand({5}) > 0.5},
      {"nothing", torch::zeros({0, 7})},
      {"param", torch::randn({3}, torch::requires_grad())},
  };
  fs::path path = dir_ / "model.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"round", "1"}}).ok());

  Metadata metadata;
  auto loaded = LoadSafetensors(path, {}, &metadata);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(metadata.at("round"), "1");
  ASSERT_EQ(loaded->size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(loaded->count(name));
    const at::Tensor& actual = loaded->at(name);
    EXPECT_EQ(actual.scalar_type(), expected.scalar_type());
    EXPECT_EQ(actual.sizes(), expected.sizes());
    EXPECT_TRUE(actual.is_contiguous());
    EXPECT_FALSE(actual.requires_grad());
    EXPECT_TRUE(torch::equal(actual, expected.detach()));
  }
  // Digest of the torch tensors == digest stored in the file == digest of the loaded tensors.
  auto digest = ComputeDigest(tensors);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(metadata.at(std::string(kDigestMetadataKey)), *digest);
  EXPECT_EQ(*ComputeDigest(*loaded), *digest);
}

TEST_F(TorchTensorsTest, LoadedTensorsOutliveTheFile) {
  fs::path path = dir_ / "w.safetensors";
  TensorMap tensors{{"w", torch::arange(6, torch::kFloat).reshape({2, 3})}};
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  TensorMap loaded = *LoadSafetensors(path);
  fs::remove(path);
  EXPECT_TRUE(torch::equal(loaded.at("w"), tensors.at("w")));
}

TEST_F(TorchTensorsTest, SerializedBytesMatchTheFile) {
  TensorMap tensors{{"a", torch::ones({2}, torch::kHalf)}, {"b", torch::ones({3}, torch::kDouble)}};
  fs::path path = dir_ / "x.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  auto serialized = SerializeSafetensors(tensors);
  ASSERT_TRUE(serialized.ok());
  EXPECT_EQ(*serialized, testing::ReadBytes(path));
  auto view = SafetensorsView::Parse(std::as_bytes(std::span<const char>(*serialized)));
  ASSERT_TRUE(view.ok());
  auto back = ToTorch(*view);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(torch::equal(back->at("a"), tensors.at("a")));
}

TEST_F(TorchTensorsTest, RefusesUnsupportedTensorsNamingThem) {
  fs::path path = dir_ / "bad.safetensors";
  absl::Status status =
      WriteSafetensors(path, TensorMap{{"z", torch::zeros({2}, torch::kComplexFloat)}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(status.message()),
      HasSubstr(path.string() + ": tensor \"z\": torch dtype ComplexFloat has no container dtype"));
  status = WriteSafetensors(path, TensorMap{{"u", at::Tensor()}});
  EXPECT_THAT(std::string(status.message()), HasSubstr("tensor \"u\" is undefined"));
  status = WriteSafetensors(path, TensorMap{{"s", torch::eye(3).to_sparse()}});
  EXPECT_THAT(std::string(status.message()), HasSubstr("tensor \"s\" is not dense"));
  EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace fedjoint::common::tensors
