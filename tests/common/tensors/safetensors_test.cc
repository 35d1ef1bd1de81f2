// Round trips, layout, digest definition, API behaviour and atomic writes of the container.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstring>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/tensors/digest.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"
#include "tests/common/tensors/test_util.h"

namespace fedjoint::common::tensors {
namespace {

namespace fs = std::filesystem;

using ::testing::ElementsAre;
using testing::EveryDTypeTensors;
using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::OwnedTensor;
using testing::Refs;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::vector<std::byte> Bytes(const std::vector<uint8_t>& values) {
  std::vector<std::byte> out;
  for (uint8_t v : values) out.push_back(std::byte{v});
  return out;
}

class SafetensorsTest : public testing::TempDirTest {};

TEST(DTypeTest, NamesSizesAndParsing) {
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  for (DType dtype : kAllDTypes) {
    auto parsed = ParseDType(DTypeName(dtype));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, dtype);
  }
  auto bad = ParseDType("f32");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(bad.status()), HasSubstr("unknown dtype \"f32\" (supported: F64, F32"));
}

TEST(DTypeTest, ByteSizeRefusesNegativeAndOverflow) {
  EXPECT_EQ(*ByteSize(DType::kF32, std::vector<int64_t>{2, 3}), 24u);
  EXPECT_EQ(*ByteSize(DType::kF64, std::vector<int64_t>{}), 8u);
  EXPECT_EQ(*ByteSize(DType::kF64, std::vector<int64_t>{5, 0}), 0u);
  EXPECT_THAT(Message(ByteSize(DType::kF32, std::vector<int64_t>{2, -1}).status()),
              HasSubstr("dimension 1 of the shape is negative (-1)"));
  EXPECT_THAT(Message(ByteSize(DType::kF32, std::vector<int64_t>{1ll << 31, 1ll << 31}).status()),
              HasSubstr("overflows 64 bits at dimension 1"));
}

TEST_F(SafetensorsTest, RoundTripsEveryDTypeWithScalarsZeroSizeAndMetadata) {
  std::vector<OwnedTensor> tensors = EveryDTypeTensors();
  Metadata metadata{{"round", "7"},
                    {"note",
                     "h\xc3\xbc"
                     "ftgelenk / knee"},
                    {"empty", ""}};
  fs::path path = dir_ / "all.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, Refs(tensors), metadata).ok());

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (const OwnedTensor& expected : tensors) {
    SCOPED_TRACE(expected.name);
    const TensorInfo* info = file->Find(expected.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, expected.dtype);
    EXPECT_EQ(info->shape, expected.shape);
    auto data = file->data(expected.name);
    ASSERT_TRUE(data.ok());
    EXPECT_TRUE(
        std::equal(data->begin(), data->end(), expected.bytes.begin(), expected.bytes.end()));
    // Largest elements first keeps every tensor aligned to its element size.
    EXPECT_EQ(info->begin % DTypeSize(info->dtype), 0u);
  }
  // Metadata preserved, plus the digest, which is the digest of the tensors.
  auto digest = ComputeDigest(Refs(tensors));
  ASSERT_TRUE(digest.ok());
  Metadata with_digest = metadata;
  with_digest[std::string(kDigestMetadataKey)] = *digest;
  EXPECT_EQ(file->metadata(), with_digest);
  EXPECT_EQ(file->digest(), *digest);
  // tensors() is sorted by name.
  EXPECT_TRUE(std::is_sorted(file->tensors().begin(), file->tensors().end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
}

TEST_F(SafetensorsTest, LayoutIsAlignedAndReproducible) {
  std::vector<OwnedTensor> tensors = EveryDTypeTensors();
  std::vector<TensorRef> refs = Refs(tensors);
  auto first = SerializeSafetensors(refs);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((8 + testing::HeaderLength(*first)) % 8, 0u) << "data section must start 8-aligned";
  EXPECT_EQ(testing::HeaderText(*first).front(), '{');

  std::reverse(refs.begin(), refs.end());  // input order must not matter
  auto second = SerializeSafetensors(refs);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);

  fs::path path = dir_ / "x.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, refs).ok());
  EXPECT_EQ(testing::ReadBytes(path), *first) << "file and in-memory encodings must agree";

  auto encoding = EncodeSafetensors(refs);
  ASSERT_TRUE(encoding.ok());
  EXPECT_EQ(encoding->total_size, first->size());
  std::string joined = encoding->header;
  for (auto segment : encoding->segments) {
    joined.append(reinterpret_cast<const char*>(segment.data()), segment.size());
  }
  EXPECT_EQ(joined, *first);
}

TEST_F(SafetensorsTest, ParsesInMemoryBuffers) {
  std::vector<OwnedTensor> tensors = {MakeTensor("w", DType::kF32, {4}),
                                      MakeTensor("n", DType::kI64, {2})};
  auto bytes = SerializeSafetensors(Refs(tensors), {{"k", "v"}});
  ASSERT_TRUE(bytes.ok());
  auto view = SafetensorsView::Parse(std::as_bytes(std::span<const char>(*bytes)), {}, "update");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->source(), "update");
  EXPECT_EQ(view->metadata().at("k"), "v");
  auto floats = view->DataAs<float>("w");
  ASSERT_TRUE(floats.ok()) << floats.status();
  EXPECT_THAT(*floats, ElementsAre(-1.5f, -1.0f, -0.5f, 0.0f));
  auto longs = view->DataAs<int64_t>("n");
  ASSERT_TRUE(longs.ok());
  EXPECT_THAT(*longs, ElementsAre(-3, -2));

  auto wrong_type = view->DataAs<double>("w");
  EXPECT_EQ(wrong_type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(wrong_type.status()), HasSubstr("update: tensor \"w\" is F32, not F64"));
  auto missing = view->data("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr("update: no tensor \"nope\""));
  EXPECT_EQ(view->Find("nope"), nullptr);

  // refs() re-hash to the same digest.
  EXPECT_EQ(*ComputeDigest(view->refs()), view->digest());
}

TEST_F(SafetensorsTest, EmptyContainerRoundTrips) {
  fs::path path = dir_ / "empty.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, std::vector<TensorRef>{}, {{"a", "b"}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_EQ(file->metadata().at("a"), "b");
  EXPECT_EQ(file->digest(), "fdd23f459d61f079fef43dfdf0031827f424acb82d3cbe80745c0ac566576eea");
}

// Pins the digest definition (computed independently with Python's hashlib and struct):
// SHA-256("fedjoint-tensors-v1\0" u64(2) [u64(1) "b" u64(3) "I64" u64(0) u64(8) i64(-5)]
//         [u64(1) "w" u64(3) "F32" u64(1) i64(2) u64(8) f32(1.0) f32(-2.0)]).
TEST(DigestTest, MatchesTheDocumentedDefinition) {
  std::vector<std::byte> w, b;
  testing::AppendLE<float>(w, 1.0f);
  testing::AppendLE<float>(w, -2.0f);
  testing::AppendLE<int64_t>(b, -5);
  std::vector<TensorRef> refs = {{"w", DType::kF32, {2}, w}, {"b", DType::kI64, {}, b}};
  auto digest = ComputeDigest(refs);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, "1317d73bce517997e205590e969abc49f51e33192763bcea7360f9748e511cb1");
  EXPECT_TRUE(IsWellFormedDigest(*digest));
  EXPECT_FALSE(IsWellFormedDigest("1317D73B"));
}

TEST(DigestTest, ChangesWithNameDTypeShapeAndEveryByte) {
  std::vector<std::byte> data = Bytes({0, 0, 128, 63, 0, 0, 0, 64, 1, 2, 3, 4, 5, 6, 7, 8});
  auto digest_of = [](const TensorRef& ref) { return *ComputeDigest(std::vector<TensorRef>{ref}); };
  TensorRef base{"enc.conv1.weight", DType::kF32, {2, 2}, data};
  std::string reference = digest_of(base);

  TensorRef renamed = base;
  renamed.name = "enc.conv2.weight";
  EXPECT_NE(digest_of(renamed), reference);
  TensorRef retyped = base;
  retyped.dtype = DType::kI32;
  EXPECT_NE(digest_of(retyped), reference);
  TensorRef reshaped = base;
  reshaped.shape = {4};
  EXPECT_NE(digest_of(reshaped), reference);
  reshaped.shape = {1, 4};
  EXPECT_NE(digest_of(reshaped), reference);
  for (std::size_t i = 0; i < data.size(); ++i) {
    std::vector<std::byte> flipped = data;
    flipped[i] ^= std::byte{0x01};
    TensorRef changed = base;
    changed.data = flipped;
    EXPECT_NE(digest_of(changed), reference) << "byte " << i;
  }
  // Length prefixes: moving a byte between adjacent fields must not collide.
  std::vector<std::byte> one = Bytes({1}), two = Bytes({1, 1}), none;
  auto a = ComputeDigest(
      std::vector<TensorRef>{{"a", DType::kU8, {1}, one}, {"b", DType::kU8, {2}, two}});
  auto b = ComputeDigest(
      std::vector<TensorRef>{{"a", DType::kU8, {2}, two}, {"b", DType::kU8, {1}, one}});
  EXPECT_NE(*a, *b);
}

TEST(WriterValidationTest, RefusesInconsistentTensors) {
  std::vector<std::byte> four = Bytes({1, 2, 3, 4});
  auto error = [](std::vector<TensorRef> refs) { return SerializeSafetensors(refs).status(); };
  absl::Status status = error({{"w", DType::kF32, {2}, four}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status),
              HasSubstr("tensor \"w\": F32 shape [2] needs 8 bytes but 4 were given"));
  EXPECT_THAT(Message(error({{"w", DType::kU8, {4}, four}, {"w", DType::kU8, {4}, four}})),
              HasSubstr("tensor \"w\" appears more than once"));
  EXPECT_THAT(Message(error({{"w", DType::kU8, {-4}, four}})),
              HasSubstr("tensor \"w\": dimension 0 of the shape is negative (-4)"));
  EXPECT_THAT(Message(error({{"__metadata__", DType::kU8, {4}, four}})),
              HasSubstr("reserved for the metadata"));
  EXPECT_THAT(Message(error({{"", DType::kU8, {4}, four}})), HasSubstr("empty name"));
  EXPECT_THAT(Message(error({{"bad\xff", DType::kU8, {4}, four}})), HasSubstr("must be UTF-8"));
}

TEST_F(SafetensorsTest, WriterOwnsTheDigestKeyAndNamesThePathOnError) {
  std::vector<OwnedTensor> tensors = {MakeTensor("w", DType::kF32, {3})};
  fs::path path = dir_ / "w.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, Refs(tensors), {{"fedjoint.sha256", "forged"}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("fedjoint.sha256"), *ComputeDigest(Refs(tensors)));

  std::vector<TensorRef> bad = {{"w", DType::kF32, {7}, tensors[0].bytes}};
  absl::Status status = WriteSafetensors(path, bad);
  EXPECT_THAT(Message(status), HasSubstr(path.string() + ": tensor \"w\""));
  status = WriteSafetensors(dir_ / "missing_dir" / "x.safetensors", Refs(tensors));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr("missing_dir"));
}

TEST_F(SafetensorsTest, ReadOptionsControlTheDigestCheck) {
  std::vector<OwnedTensor> tensors = {MakeTensor("w", DType::kF32, {3})};
  std::string plain = *SerializeSafetensors(Refs(tensors));
  plain = testing::EditHeader(plain, [](auto& h) { h["__metadata__"].erase("fedjoint.sha256"); });
  auto buffer = std::as_bytes(std::span<const char>(plain));

  auto strict = SafetensorsView::Parse(buffer, {}, "plain.safetensors");
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(strict.status()),
              HasSubstr("plain.safetensors: metadata has no \"fedjoint.sha256\" content digest"));

  SafetensorsReadOptions lenient;
  lenient.require_digest = false;
  auto view = SafetensorsView::Parse(buffer, lenient);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->digest(), *ComputeDigest(Refs(tensors))) << "computed even when not stored";

  lenient.verify_digest = false;
  view = SafetensorsView::Parse(buffer, lenient);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->digest(), "");
}

TEST_F(SafetensorsTest, SkippingVerificationReturnsTheStoredDigest) {
  fs::path path = dir_ / "w.safetensors";
  std::vector<OwnedTensor> tensors = {MakeTensor("w", DType::kF32, {3})};
  ASSERT_TRUE(WriteSafetensors(path, Refs(tensors)).ok());
  std::string bytes = testing::ReadBytes(path);
  bytes.back() ^= 0x40;
  testing::WriteBytes(path, bytes);
  SafetensorsReadOptions fast;
  fast.verify_digest = false;
  auto file = SafetensorsFile::Open(path, fast);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->digest(), *ComputeDigest(Refs(tensors)));
  EXPECT_EQ(SafetensorsFile::Open(path).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SafetensorsTest, ReplacingAFileLeavesNoTemporaries) {
  fs::path path = dir_ / "global.safetensors";
  std::vector<OwnedTensor> v1 = {MakeTensor("w", DType::kF32, {3}, 0.5)};
  std::vector<OwnedTensor> v2 = {MakeTensor("w", DType::kF32, {3}, 0.25)};
  ASSERT_TRUE(WriteSafetensors(path, Refs(v1)).ok());
  ASSERT_TRUE(WriteSafetensors(path, Refs(v2)).ok());
  EXPECT_EQ(SafetensorsFile::Open(path)->digest(), *ComputeDigest(Refs(v2)));
  EXPECT_THAT(DirEntries(), ElementsAre("global.safetensors"));
}

// A write that fails half-way (here: the file size limit, as a full disk would) must leave the old
// file intact and no temporary behind.
TEST_F(SafetensorsTest, FailedWriteKeepsTheOldFile) {
  fs::path path = dir_ / "global.safetensors";
  std::vector<OwnedTensor> old_tensors = {MakeTensor("w", DType::kF32, {3})};
  ASSERT_TRUE(WriteSafetensors(path, Refs(old_tensors)).ok());
  std::string old_bytes = testing::ReadBytes(path);

  std::vector<OwnedTensor> big = {MakeTensor("w", DType::kF32, {1 << 20})};  // 4 MiB
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &previous), 0);
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit limited = saved;
  limited.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  absl::Status status = WriteSafetensors(path, Refs(big));
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::sigaction(SIGXFSZ, &previous, nullptr);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(Message(status), HasSubstr("global.safetensors"));
  EXPECT_THAT(Message(status), HasSubstr("write failed"));
  EXPECT_EQ(testing::ReadBytes(path), old_bytes);
  EXPECT_THAT(DirEntries(), ElementsAre("global.safetensors"));
  EXPECT_TRUE(SafetensorsFile::Open(path).ok());
}

TEST_F(SafetensorsTest, OpenErrorsNameThePath) {
  auto missing = SafetensorsFile::Open(dir_ / "nope.safetensors");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr("nope.safetensors"));
  auto directory = SafetensorsFile::Open(dir_);
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(directory.status()), HasSubstr(dir_.string() + ": not a regular file"));
  testing::WriteBytes(dir_ / "empty", "");
  auto empty = SafetensorsFile::Open(dir_ / "empty");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(empty.status()),
              HasSubstr("empty: 0 bytes is shorter than the 8-byte header length"));
}

TEST_F(SafetensorsTest, FileOutlivesMovesAndKeepsDataValid) {
  fs::path path = dir_ / "m.safetensors";
  std::vector<OwnedTensor> tensors = {MakeTensor("w", DType::kF64, {5})};
  ASSERT_TRUE(WriteSafetensors(path, Refs(tensors)).ok());
  std::vector<SafetensorsFile> files;
  for (int i = 0; i < 4; ++i) files.push_back(*SafetensorsFile::Open(path));  // vector moves
  for (const SafetensorsFile& file : files) {
    EXPECT_THAT(*file.DataAs<double>("w"), ElementsAre(-1.5, -1.0, -0.5, 0.0, 0.5));
  }
}

}  // namespace
}  // namespace fedjoint::common::tensors
