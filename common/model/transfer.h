// Fine-tuning from another fedjoint model: the "transfer" scheme of the scheme comparison
// (pretrain on one joint, fine-tune on another; METHODS.md §1, docs/results.md).
//
// Every tensor of the target model is filled from the source model when the source has a tensor
// of the same name and shape. A normalization tensor ("...norms.<domain>...") the source lacks
// under the target's domain name is taken from the source's only domain when the source has
// exactly one (an ankle model's norms start a knee model's norms; with several source domains
// the choice would be arbitrary, so they keep their fresh values). Everything else — typically
// the output heads of joints the source never had — keeps its fresh initialization.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensors/torch_tensors.h"

namespace fedjoint::common::model {

struct TransferReport {
  std::vector<std::string> copied;      // target names filled from the source
  std::vector<std::string> fresh;       // target names the source has nothing for
  std::vector<std::string> mismatched;  // "name: source [..] vs model [..]" (kept fresh)

  // One line: counts, then the fresh and mismatched names.
  std::string ToString() const;
};

// Fills `target` (the fresh model's weights, modified in place) from `source` as described above.
// InvalidArgument when not a single tensor could be copied: the source is not a model of this
// architecture, and fine-tuning "from" it would silently be training from scratch.
absl::StatusOr<TransferReport> TransferWeights(const tensors::TensorMap& source,
                                               tensors::TensorMap& target);

}  // namespace fedjoint::common::model
