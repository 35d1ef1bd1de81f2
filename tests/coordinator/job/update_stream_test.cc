#include "coordinator/job/update_stream.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/tensors/digest.h"
#include "common/tensors/safetensors_writer.h"

namespace fedjoint::coordinator {
namespace {

namespace tensors = common::tensors;
using ::testing::HasSubstr;

struct Tensor {
  std::string name;
  std::vector<float> values;
  tensors::DType dtype = tensors::DType::kF32;
};

std::vector<tensors::TensorRef> Refs(const std::vector<Tensor>& ts) {
  std::vector<tensors::TensorRef> refs;
  for (const auto& t : ts) {
    const int64_t n =
        t.dtype == tensors::DType::kF32 ? int64_t(t.values.size()) : int64_t(t.values.size()) * 2;
    refs.push_back({t.name, t.dtype, {n}, std::as_bytes(std::span<const float>(t.values))});
  }
  return refs;
}

// What fedjoint's writer makes.
std::string Encode(const std::vector<Tensor>& ts) {
  auto bytes = tensors::SerializeSafetensors(Refs(ts), {{"fedjoint.site", "site-x"}});
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return *bytes;
}

// A valid file whose data section holds the tensors in the given order (not name order), with
// the right content digest.
std::string EncodeInFileOrder(const std::vector<Tensor>& ts) {
  nlohmann::json header;
  header["__metadata__"] = {{"fedjoint.sha256", *tensors::ComputeDigest(Refs(ts))}};
  std::string data;
  for (const auto& t : ts) {
    header[t.name] = {{"dtype", "F32"},
                      {"shape", {t.values.size()}},
                      {"data_offsets", {data.size(), data.size() + 4 * t.values.size()}}};
    data.append(reinterpret_cast<const char*>(t.values.data()), 4 * t.values.size());
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);
  return out + text + data;
}

// Feeds `file` in pieces of `piece` bytes; the first error, or Finish()'s result.
absl::StatusOr<std::string> Stream(const std::string& file, size_t piece) {
  UpdateStreamCheck check("update from site 'site-x'", file.size());
  for (size_t at = 0; at < file.size(); at += piece) {
    if (auto s = check.Feed(std::string_view(file).substr(at, piece)); !s.ok()) return s;
  }
  return check.Finish();
}

std::vector<Tensor> Model() {
  std::vector<Tensor> ts = {{"b.weight", std::vector<float>(1000)},
                            {"a.bias", std::vector<float>(3)},
                            {"c.empty", {}},
                            {"d.big", std::vector<float>(70000)}};
  for (auto& t : ts)
    for (size_t i = 0; i < t.values.size(); ++i) t.values[i] = float(i % 13) - 6.5f;
  return ts;
}

TEST(UpdateStreamCheckTest, DigestOnTheWayEqualsTheFilesWhateverThePieces) {
  const std::string file = Encode(Model());
  const std::string digest = *tensors::ComputeDigest(Refs(Model()));
  for (size_t piece : {size_t{1}, size_t{3}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    auto got = Stream(file, piece);
    ASSERT_TRUE(got.ok()) << piece << ": " << got.status();
    EXPECT_EQ(*got, digest) << piece;
  }
}

TEST(UpdateStreamCheckTest, NonFiniteValueNamesTheSiteAndTensor) {
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    auto ts = Model();
    ts[3].values[69999] = bad;  // the very last value of the file
    for (size_t piece : {size_t{1}, size_t{5}, size_t{65536}}) {
      auto got = Stream(Encode(ts), piece);
      EXPECT_EQ(got.status().message(),
                "update from site 'site-x': tensor 'd.big' contains NaN or infinite values")
          << piece;
    }
    ts = Model();
    ts[1].values[0] = bad;
    EXPECT_THAT(std::string(Stream(Encode(ts), 3).status().message()),
                HasSubstr("tensor 'a.bias' contains NaN or infinite values"));
  }
}

TEST(UpdateStreamCheckTest, RefusesOtherDTypesAsSoonAsTheHeaderArrives) {
  std::vector<Tensor> ts = {{"a", std::vector<float>(1000)},
                            {"h", std::vector<float>(4), tensors::DType::kF16}};
  const std::string file = Encode(ts);
  UpdateStreamCheck check("update from site 'site-x'", file.size());
  // The header alone (it is followed by 4000 + 16 bytes of data).
  absl::Status status = check.Feed(std::string_view(file).substr(0, file.size() - 4016));
  EXPECT_EQ(status.message(), "update from site 'site-x': tensor 'h' has dtype F16, expected F32");
}

TEST(UpdateStreamCheckTest, WrongStoredDigestIsDataLoss) {
  auto ts = Model();
  std::string file = Encode(ts);
  // Change one data byte (the digest in the header stays): the tensors no longer hash to it.
  file[file.size() - 2] ^= 0x01;
  auto got = Stream(file, 4096);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("update from site 'site-x': content digest mismatch"));
}

TEST(UpdateStreamCheckTest, LayoutNotInNameOrderLeavesTheDigestToTheCaller) {
  std::vector<Tensor> ts = {{"z", std::vector<float>(10, 1.f)}, {"a", std::vector<float>(5, 2.f)}};
  auto got = Stream(EncodeInFileOrder(ts), 4);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "");
  // The values are still checked.
  ts[0].values[9] = std::nanf("");
  EXPECT_THAT(std::string(Stream(EncodeInFileOrder(ts), 4).status().message()),
              HasSubstr("tensor 'z' contains NaN or infinite values"));
}

TEST(UpdateStreamCheckTest, TruncatedOrOverlongStreamsAndBadHeaders) {
  const std::string file = Encode(Model());
  {
    UpdateStreamCheck check("update from site 'site-x'", file.size());
    ASSERT_TRUE(check.Feed(std::string_view(file).substr(0, file.size() - 1)).ok());
    EXPECT_EQ(check.Finish().status().code(), absl::StatusCode::kDataLoss);
  }
  {
    UpdateStreamCheck check("update from site 'site-x'", file.size() - 1);
    EXPECT_EQ(check.Feed(file).code(), absl::StatusCode::kResourceExhausted);
  }
  {
    UpdateStreamCheck check("update from site 'site-x'", 5);
    ASSERT_TRUE(check.Feed("abcde").ok());
    EXPECT_THAT(std::string(check.Finish().status().message()),
                HasSubstr("shorter than the 8-byte header length"));
  }
  {
    // A header length beyond the limit is refused from the first 8 bytes.
    std::string huge(8, '\0');
    huge[3] = 0x10;  // 256 MiB
    UpdateStreamCheck check("update from site 'site-x'", uint64_t{1} << 30);
    EXPECT_EQ(check.Feed(huge).code(), absl::StatusCode::kResourceExhausted);
  }
  {
    std::string bad = file;
    bad[8] = '[';
    EXPECT_THAT(std::string(Stream(bad, 100).status().message()),
                HasSubstr("header does not start with '{'"));
  }
}

}  // namespace
}  // namespace fedjoint::coordinator
