// Every corruption case, made by editing the bytes of a real written file, must be refused with
// the right code and a message naming the file, the tensor and what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"
#include "tests/common/tensors/test_util.h"

namespace fedjoint::common::tensors {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::OwnedTensor;
using Json = nlohmann::ordered_json;

// Data layout of the base file (largest elements first, then by name):
//   steps I64 [2] -> [0, 16), layer1.w F32 [2, 3] -> [16, 40), layer2.w F32 [3] -> [40, 52),
//   mask BOOL [4] -> [52, 56).
class CorruptionTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    tensors_ = {MakeTensor("layer1.w", DType::kF32, {2, 3}),
                MakeTensor("layer2.w", DType::kF32, {3}), MakeTensor("steps", DType::kI64, {2}),
                MakeTensor("mask", DType::kBool, {4})};
    path_ = dir_ / "global.safetensors";
    ASSERT_TRUE(WriteSafetensors(path_, testing::Refs(tensors_), {{"round", "3"}}).ok());
    original_ = testing::ReadBytes(path_);
    ASSERT_TRUE(SafetensorsFile::Open(path_).ok());
  }

  // Writes `bytes` over the file and expects Open to fail with `code` and a message that starts
  // with the path and contains `substring`.
  void ExpectRejected(const std::string& bytes, absl::StatusCode code, const std::string& substring,
                      const SafetensorsReadOptions& options = {}) {
    testing::WriteBytes(path_, bytes);
    auto file = SafetensorsFile::Open(path_, options);
    ASSERT_FALSE(file.ok()) << "corrupted file was accepted";
    EXPECT_EQ(file.status().code(), code) << file.status();
    std::string message(file.status().message());
    EXPECT_THAT(message, ::testing::StartsWith(path_.string() + ": "));
    EXPECT_THAT(message, HasSubstr(substring));
    // The same validation applies to in-memory buffers.
    auto view = SafetensorsView::Parse(std::as_bytes(std::span<const char>(bytes)), options, "buf");
    ASSERT_FALSE(view.ok());
    EXPECT_EQ(view.status().code(), code);
    EXPECT_THAT(std::string(view.status().message()), HasSubstr(substring));
  }

  std::string Edited(const std::function<void(Json&)>& edit) {
    return testing::EditHeader(original_, edit);
  }
  // Replaces one occurrence of `from` in the header with `to` of the same length.
  std::string HeaderReplaced(const std::string& from, const std::string& to) {
    EXPECT_EQ(from.size(), to.size());
    std::string bytes = original_;
    std::size_t at = bytes.find(from, 8);
    EXPECT_NE(at, std::string::npos);
    EXPECT_LT(at, 8 + testing::HeaderLength(bytes));
    bytes.replace(at, from.size(), to);
    return bytes;
  }

  std::vector<OwnedTensor> tensors_;
  fs::path path_;
  std::string original_;
};

TEST_F(CorruptionTest, FileShorterThanTheLengthPrefix) {
  ExpectRejected(original_.substr(0, 5), absl::StatusCode::kDataLoss,
                 "5 bytes is shorter than the 8-byte header length (truncated file?)");
}

TEST_F(CorruptionTest, TruncatedData) {
  ExpectRejected(original_.substr(0, original_.size() - 3), absl::StatusCode::kDataLoss,
                 "tensor \"mask\": data_offsets [52, 56] ends beyond the data section of 53 "
                 "bytes (truncated file?)");
}

TEST_F(CorruptionTest, TruncatedHeader) {
  ExpectRejected(original_.substr(0, 40), absl::StatusCode::kDataLoss,
                 "exceeds the 32 bytes after the length prefix (truncated file?)");
}

TEST_F(CorruptionTest, HeaderLengthZero) {
  std::string bytes = original_;
  testing::SetHeaderLength(bytes, 0);
  ExpectRejected(bytes, absl::StatusCode::kInvalidArgument, "header length is 0");
}

TEST_F(CorruptionTest, HeaderLengthHuge) {
  std::string bytes = original_;
  testing::SetHeaderLength(bytes, 1ull << 60);
  ExpectRejected(bytes, absl::StatusCode::kResourceExhausted,
                 "header length 1152921504606846976 exceeds the limit of 104857600 bytes");
}

TEST_F(CorruptionTest, HeaderLengthOverConfiguredBound) {
  SafetensorsReadOptions options;
  options.max_header_bytes = 64;
  ExpectRejected(original_, absl::StatusCode::kResourceExhausted, "exceeds the limit of 64 bytes",
                 options);
}

TEST_F(CorruptionTest, HeaderLengthBeyondTheFile) {
  std::string bytes = original_;
  testing::SetHeaderLength(bytes, bytes.size());
  ExpectRejected(bytes, absl::StatusCode::kDataLoss,
                 "header length " + std::to_string(bytes.size()) + " exceeds the " +
                     std::to_string(bytes.size() - 8) + " bytes after the length prefix");
}

TEST_F(CorruptionTest, InvalidJson) {
  std::string bytes = original_;
  std::size_t close = bytes.rfind('}', 8 + testing::HeaderLength(bytes) - 1);
  bytes[close] = ' ';
  ExpectRejected(bytes, absl::StatusCode::kInvalidArgument, "header is not valid JSON");
}

TEST_F(CorruptionTest, InvalidUtf8InHeader) {
  std::string bytes = HeaderReplaced("\"round\"",
                                     "\"ro\xff\xfe"
                                     "d\"");
  ExpectRejected(bytes, absl::StatusCode::kInvalidArgument, "header is not valid JSON");
}

TEST_F(CorruptionTest, HeaderNotAnObject) {
  ExpectRejected(testing::ReplaceHeader(original_, "[1, 2]"), absl::StatusCode::kInvalidArgument,
                 "header does not start with '{'");
}

TEST_F(CorruptionTest, OverlappingOffsets) {
  ExpectRejected(
      Edited([](Json& h) {
        h["layer2.w"]["data_offsets"] = {36, 48};
      }),
      absl::StatusCode::kInvalidArgument,
      "tensor \"layer2.w\": data_offsets [36, 48] overlap tensor \"layer1.w\" at [16, 40]");
}

TEST_F(CorruptionTest, BeginAfterEnd) {
  ExpectRejected(Edited([](Json& h) {
                   h["layer2.w"]["data_offsets"] = {52, 40};
                 }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"layer2.w\": data_offsets [52, 40] has begin > end");
}

TEST_F(CorruptionTest, ShapeDoesNotMatchTheByteSize) {
  ExpectRejected(Edited([](Json& h) {
                   h["layer1.w"]["shape"] = {2, 4};
                 }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"layer1.w\": F32 shape [2, 4] needs 32 bytes but data_offsets [16, 40] "
                 "span 24");
}

TEST_F(CorruptionTest, UnknownDType) {
  ExpectRejected(Edited([](Json& h) { h["steps"]["dtype"] = "I128"; }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"steps\": unknown dtype \"I128\" (supported: F64, F32, F16, BF16");
}

TEST_F(CorruptionTest, DuplicateName) {
  ExpectRejected(HeaderReplaced("\"layer2.w\"", "\"layer1.w\""), absl::StatusCode::kInvalidArgument,
                 "tensor \"layer1.w\" is defined twice");
}

TEST_F(CorruptionTest, DuplicateKeyInsideAnEntry) {
  ExpectRejected(HeaderReplaced("\"shape\"", "\"dtype\""), absl::StatusCode::kInvalidArgument,
                 "key \"dtype\" appears twice in one object");
}

TEST_F(CorruptionTest, FlippedDataByteBreaksTheDigest) {
  std::string bytes = original_;
  bytes[8 + testing::HeaderLength(bytes) + 20] ^= 0x01;  // inside layer1.w
  ExpectRejected(bytes, absl::StatusCode::kDataLoss, "content digest mismatch");
}

TEST_F(CorruptionTest, RenamedTensorBreaksTheDigest) {
  ExpectRejected(HeaderReplaced("\"layer2.w\"", "\"layer3.w\""), absl::StatusCode::kDataLoss,
                 "content digest mismatch: metadata \"fedjoint.sha256\" is ");
}

TEST_F(CorruptionTest, ChangedShapeOfSameSizeBreaksTheDigest) {
  ExpectRejected(Edited([](Json& h) {
                   h["layer1.w"]["shape"] = {3, 2};
                 }),
                 absl::StatusCode::kDataLoss, "content digest mismatch");
}

TEST_F(CorruptionTest, TrailingGarbage) {
  ExpectRejected(original_ + "garbage!", absl::StatusCode::kInvalidArgument,
                 "8 trailing bytes after the last tensor (data section is 64 bytes, tensors end "
                 "at 56)");
}

TEST_F(CorruptionTest, GapBetweenTensors) {
  std::string bytes = Edited([](Json& h) { h["mask"]["data_offsets"] = {56, 60}; });
  bytes.insert(bytes.size() - 4, 4, '\0');
  ExpectRejected(bytes, absl::StatusCode::kInvalidArgument,
                 "data section bytes [52, 56) belong to no tensor (gap before tensor \"mask\")");
}

TEST_F(CorruptionTest, MissingField) {
  ExpectRejected(Edited([](Json& h) { h["steps"].erase("shape"); }),
                 absl::StatusCode::kInvalidArgument, "tensor \"steps\": missing \"shape\"");
}

TEST_F(CorruptionTest, UnexpectedField) {
  ExpectRejected(Edited([](Json& h) { h["steps"]["scale"] = 2; }),
                 absl::StatusCode::kInvalidArgument, "tensor \"steps\": unexpected key \"scale\"");
}

TEST_F(CorruptionTest, WrongJsonTypes) {
  ExpectRejected(Edited([](Json& h) { h["steps"]["shape"] = "2"; }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"steps\": \"shape\" is a string, expected an array");
  ExpectRejected(Edited([](Json& h) { h["steps"]["dtype"] = 64; }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"steps\": \"dtype\" is an integer, expected a string");
  ExpectRejected(Edited([](Json& h) { h["steps"]["data_offsets"] = {0}; }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"steps\": \"data_offsets\" is [0], expected [begin, end] integers >= 0");
  ExpectRejected(Edited([](Json& h) { h["steps"] = Json::array(); }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"steps\": entry is an array, expected an object");
  ExpectRejected(Edited([](Json& h) { h["steps"]["shape"] = {2.0}; }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"steps\": \"shape\" element 0 (2.0) is not a non-negative integer");
}

TEST_F(CorruptionTest, NegativeDimension) {
  ExpectRejected(Edited([](Json& h) { h["layer2.w"]["shape"] = {-3}; }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"layer2.w\": \"shape\" element 0 (-3) is not a non-negative integer");
}

TEST_F(CorruptionTest, ElementCountOverflow) {
  ExpectRejected(Edited([](Json& h) {
                   h["layer2.w"]["shape"] = {1ll << 40, 1ll << 40};
                 }),
                 absl::StatusCode::kInvalidArgument,
                 "tensor \"layer2.w\": the shape's byte size overflows 64 bits at dimension 1");
}

TEST_F(CorruptionTest, OffsetsBeyondInt64) {
  ExpectRejected(Edited([](Json& h) {
                   h["mask"]["data_offsets"] = {uint64_t{52}, uint64_t{1} << 63};
                 }),
                 absl::StatusCode::kInvalidArgument,
                 "\"data_offsets\" is [52,9223372036854775808], expected [begin, end]");
}

TEST_F(CorruptionTest, MetadataNotStringToString) {
  ExpectRejected(Edited([](Json& h) { h["__metadata__"]["round"] = 3; }),
                 absl::StatusCode::kInvalidArgument,
                 "metadata \"round\" is an integer, expected a string");
  ExpectRejected(Edited([](Json& h) { h["__metadata__"] = "x"; }),
                 absl::StatusCode::kInvalidArgument,
                 "\"__metadata__\" is a string, expected an object of strings");
}

TEST_F(CorruptionTest, MissingOrMalformedDigest) {
  ExpectRejected(Edited([](Json& h) { h["__metadata__"].erase("fedjoint.sha256"); }),
                 absl::StatusCode::kInvalidArgument,
                 "metadata has no \"fedjoint.sha256\" content digest (required)");
  ExpectRejected(Edited([](Json& h) { h["__metadata__"]["fedjoint.sha256"] = "ABC"; }),
                 absl::StatusCode::kInvalidArgument,
                 "metadata \"fedjoint.sha256\" is \"ABC\", expected 64 lowercase hex digits");
}

TEST_F(CorruptionTest, EmptyTensorName) {
  ExpectRejected(Edited([](Json& h) {
                   h[""] = {{"dtype", "U8"}, {"shape", {0}}, {"data_offsets", {0, 0}}};
                 }),
                 absl::StatusCode::kInvalidArgument, "empty tensor name");
}

}  // namespace
}  // namespace fedjoint::common::tensors
