#include "coordinator/job/update_stream.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/aggregation/fedavg.h"
#include "common/tensors/dtype.h"

namespace fedjoint::coordinator {
namespace {

namespace tensors = common::tensors;

// Whether the little-endian float at p (any alignment) is NaN or infinite.
bool NonFinite(const unsigned char* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return common::aggregation::IsNonFiniteBits(bits);
}

// How many of the `count` little-endian floats at p (any alignment) are NaN or infinite.
int64_t CountNonFiniteBytes(const unsigned char* __restrict p, size_t count) {
  int64_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    bad += NonFinite(p + 4 * i);
  }
  return bad;
}

}  // namespace

UpdateStreamCheck::UpdateStreamCheck(std::string who, uint64_t total_bytes,
                                     uint64_t max_header_bytes)
    : who_(std::move(who)), total_(total_bytes), max_header_(max_header_bytes) {}

absl::Status UpdateStreamCheck::Feed(std::string_view bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  if (received_ + left > total_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(who_, ": stream exceeds ", total_, " bytes (the declared size)"));
  }
  received_ += left;
  tensors::SafetensorsReadOptions options;
  options.max_header_bytes = max_header_;
  while (left > 0 && !layout_) {
    const uint64_t need = header_end_ == 0 ? tensors::kHeaderLengthBytes : header_end_;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(left, need - header_.size()));
    header_.append(p, take);
    p += take;
    left -= take;
    if (header_.size() < need) break;
    const auto bytes_so_far = std::as_bytes(std::span<const char>(header_));
    if (header_end_ == 0) {
      // Checked against the limits first, then against the declared size: a header that does not
      // fit in it means more bytes than declared (as the transport reports them).
      auto end = tensors::SafetensorsHeaderBytes(bytes_so_far, std::numeric_limits<uint64_t>::max(),
                                                 options, who_);
      if (!end.ok()) return end.status();
      if (*end > total_) {
        return absl::ResourceExhaustedError(absl::StrCat(who_, ": stream exceeds ", total_,
                                                         " bytes (the declared size): its ",
                                                         "header alone takes ", *end));
      }
      header_end_ = *end;
      continue;
    }
    auto layout = tensors::ParseSafetensorsLayout(bytes_so_far, total_, options, who_);
    if (!layout.ok()) return layout.status();
    layout_ = std::make_unique<tensors::SafetensorsLayout>(std::move(*layout));
    std::string().swap(header_);
    if (absl::Status s = StartData(); !s.ok()) return s;
  }
  if (left == 0) return absl::OkStatus();
  return FeedData(p, left);
}

absl::Status UpdateStreamCheck::StartData() {
  for (const tensors::TensorInfo& info : layout_->tensors) {
    if (info.dtype != tensors::DType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat(who_, ": tensor '", info.name, "' has dtype ",
                                                     std::string(tensors::DTypeName(info.dtype)),
                                                     ", expected F32"));
    }
  }
  for (const tensors::TensorInfo& info : layout_->tensors) file_order_.push_back(&info);
  std::sort(file_order_.begin(), file_order_.end(),
            [](const tensors::TensorInfo* a, const tensors::TensorInfo* b) {
              return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
            });
  streamed_ = true;
  for (size_t i = 0; i < file_order_.size(); ++i) {
    streamed_ = streamed_ && file_order_[i] == &layout_->tensors[i];
  }
  if (streamed_) {
    digest_ = std::make_unique<tensors::DigestBuilder>();
    digest_->Begin(file_order_.size());
  }
  return absl::OkStatus();
}

absl::Status UpdateStreamCheck::NonFiniteAt(uint64_t data_offset) const {
  std::string name = "?";
  for (const tensors::TensorInfo& info : layout_->tensors) {
    if (info.begin <= data_offset && data_offset < info.end) name = info.name;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(who_, ": tensor '", name, "' contains NaN or infinite values"));
}

absl::Status UpdateStreamCheck::FeedData(const char* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  // Every tensor is float32 and they tile the data section, so the section is a run of floats.
  size_t i = 0;
  if (carry_len_ > 0) {
    while (carry_len_ < 4 && i < n) carry_[carry_len_++] = p[i++];
    if (carry_len_ == 4) {
      if (NonFinite(carry_)) return NonFiniteAt(data_ + i - 4);
      carry_len_ = 0;
    }
  }
  const size_t whole = (n - i) / 4;
  if (CountNonFiniteBytes(p + i, whole) > 0) {
    for (size_t k = 0; k < whole; ++k) {
      if (NonFinite(p + i + 4 * k)) return NonFiniteAt(data_ + i + 4 * k);
    }
  }
  for (size_t k = i + 4 * whole; k < n; ++k) carry_[carry_len_++] = p[k];

  if (streamed_) {
    uint64_t at = data_;
    const unsigned char* q = p;
    size_t left = n;
    while (true) {
      // Begin the tensors that start here; empty ones are complete at once.
      while (!in_tensor_ && next_ < file_order_.size() && file_order_[next_]->begin == at) {
        const tensors::TensorInfo* t = file_order_[next_];
        digest_->BeginTensor(t->name, t->dtype, t->shape, t->num_bytes());
        if (t->num_bytes() == 0) {
          ++next_;
        } else {
          in_tensor_ = true;
        }
      }
      if (left == 0) break;
      if (!in_tensor_) {
        return absl::InternalError(
            absl::StrCat(who_, ": data byte ", at, " belongs to no tensor"));  // tiling is checked
      }
      const tensors::TensorInfo* t = file_order_[next_];
      const size_t take = static_cast<size_t>(std::min<uint64_t>(left, t->end - at));
      digest_->Update(q, take);
      q += take;
      left -= take;
      at += take;
      if (at == t->end) {
        in_tensor_ = false;
        ++next_;
      }
    }
  }
  data_ += n;
  return absl::OkStatus();
}

absl::StatusOr<std::string> UpdateStreamCheck::Finish() {
  if (!layout_) {
    // Stopped inside the header: say what is wrong with what there is.
    tensors::SafetensorsReadOptions options;
    options.max_header_bytes = max_header_;
    const auto bytes = std::as_bytes(std::span<const char>(header_));
    auto end = tensors::SafetensorsHeaderBytes(bytes, received_, options, who_);
    if (!end.ok()) return end.status();
    return absl::DataLossError(absl::StrCat(who_, ": ended inside its ", *end, "-byte header"));
  }
  if (received_ != total_ || carry_len_ != 0) {
    return absl::DataLossError(
        absl::StrCat(who_, ": ended after ", received_, " of ", total_, " bytes"));
  }
  if (!streamed_) return std::string();
  if (absl::Status s = FeedData(nullptr, 0); !s.ok()) return s;  // empty tensors at the end
  if (next_ != file_order_.size() || in_tensor_) {
    return absl::DataLossError(absl::StrCat(who_, ": ended inside tensor data"));
  }
  auto computed = digest_->HexDigest();
  if (!computed.ok()) return computed.status();
  if (*computed != layout_->stored_digest) {
    return absl::DataLossError(absl::StrCat(who_, ": content digest mismatch: metadata \"",
                                            std::string(tensors::kDigestMetadataKey), "\" is ",
                                            layout_->stored_digest, " but the tensors hash to ",
                                            *computed, " (corrupted or modified)"));
  }
  return *computed;
}

}  // namespace fedjoint::coordinator
