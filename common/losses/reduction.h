// The reduction shared by every loss in this module, and the glue between loss options and the
// project's error conventions.
#pragma once

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"

namespace fedjoint::common::losses {

// What a loss returns: the mean or the sum of its per-element (per-sample, per-anchor, ...)
// values, or those values unreduced (each loss documents the unreduced shape).
enum class Reduction { kNone, kMean, kSum };

// Reduces `values` over every element. An empty tensor reduces to 0 for kMean as well as kSum
// (torch's mean of nothing is NaN; a loss term with nothing to measure should not poison the sum).
at::Tensor Reduce(const at::Tensor& values, Reduction reduction);

// Options structs validate themselves with `absl::Status Validate() const` (so a config checker
// can list every problem); modules call this at construction and the functional forms on every
// call, so a conflicting setting fails fast with the same message. Throws c10::Error, as LibTorch
// modules do; the training loop (the adapter) converts it to a Status. Validate() is declared
// before the TORCH_ARG fields because TORCH_ARG leaves the struct in a private section.
void ThrowIfInvalid(const absl::Status& status);

}  // namespace fedjoint::common::losses
