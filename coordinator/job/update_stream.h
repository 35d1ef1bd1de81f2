// Follows an update (a safetensors file of float32 tensors) while its bytes arrive, so that
// nothing has to read it again before it is aggregated: the header is parsed as soon as it is
// complete (a bad layout or a tensor that is not float32 is refused before the rest is sent),
// every value is checked to be finite, and the content digest is computed on the way when the
// tensors are laid out in name order (as fedjoint's writer lays out float32 tensors; otherwise
// Finish() says so and the caller hashes the file). The bytes are looked at while they are still
// in cache from being received.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensors/digest.h"
#include "common/tensors/safetensors_file.h"

namespace fedjoint::coordinator {

class UpdateStreamCheck {
 public:
  // `who` starts every error message (e.g. "update from site 'site-3'"). The header may take at
  // most `max_header_bytes`; it is held in memory until complete.
  UpdateStreamCheck(std::string who, uint64_t total_bytes, uint64_t max_header_bytes = 16 << 20);

  // The next bytes of the file, in order. An error as soon as what arrived is known to be bad.
  absl::Status Feed(std::string_view bytes);

  // After the last byte: the content digest, checked against the one the header stores; or an
  // empty string when the layout did not allow computing it on the way (the caller then verifies
  // the file). Every value was checked to be finite either way.
  absl::StatusOr<std::string> Finish();

  // The parsed header (after it arrived), for tests.
  const common::tensors::SafetensorsLayout* layout() const { return layout_.get(); }

 private:
  absl::Status StartData();
  absl::Status FeedData(const char* p, size_t n);
  absl::Status NonFiniteAt(uint64_t data_offset) const;

  const std::string who_;
  const uint64_t total_;
  const uint64_t max_header_;
  uint64_t received_ = 0;
  std::string header_;       // the bytes up to the end of the header, until it is parsed
  uint64_t header_end_ = 0;  // 0 until the length prefix has arrived
  std::unique_ptr<common::tensors::SafetensorsLayout> layout_;
  uint64_t data_ = 0;            // data-section bytes seen
  unsigned char carry_[4] = {};  // a float split between two pieces
  size_t carry_len_ = 0;
  // Digest on the way: tensors in file order, which is name order when `streamed_`.
  bool streamed_ = false;
  std::vector<const common::tensors::TensorInfo*> file_order_;
  size_t next_ = 0;  // the next tensor of file_order_ to begin (or the one being hashed)
  bool in_tensor_ = false;
  std::unique_ptr<common::tensors::DigestBuilder> digest_;
};

}  // namespace fedjoint::coordinator
