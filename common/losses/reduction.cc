#include "common/losses/reduction.h"

#include <string>

#include <torch/torch.h>

namespace fedjoint::common::losses {

at::Tensor Reduce(const at::Tensor& values, Reduction reduction) {
  switch (reduction) {
    case Reduction::kNone:
      return values;
    case Reduction::kSum:
      return values.sum();
    case Reduction::kMean:
      return values.numel() == 0 ? values.sum() : values.mean();
  }
  TORCH_CHECK(false, "unknown Reduction value ", static_cast<int>(reduction));
}

void ThrowIfInvalid(const absl::Status& status) {
  TORCH_CHECK(status.ok(), std::string(status.message()));
}

}  // namespace fedjoint::common::losses
