// Scoped FedAvg as a running weighted sum (McMahan et al. 2017, with FedBN-style site scopes).
//
// The coordinator feeds updates one at a time as they arrive; memory is one accumulator per
// shared tensor (O(model)), whatever the number of sites. Each update is validated completely
// before any of it is added, so a malformed or hostile update is refused without touching the
// running sum. Pure math: no network, no files, no torch.
//
// Speed: aggregation is bound by memory bandwidth. Adding one update to the sum reads the update
// and reads and writes the sum (3 memory streams for 1 of update); so validated updates are
// queued and folded into the sum `batch` at a time, in one multithreaded pass that reads each
// update once and the sum once (1 + 2 / batch streams per update). The finite check is one more
// read of each update, unless the caller has already checked every value while the bytes went
// by (ValueCheck::kAlreadyChecked: the coordinator does it as an upload arrives).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/aggregation/scopes.h"

namespace fedjoint::common::aggregation {

// A named float32 tensor whose values live elsewhere (a memory-mapped file, a received buffer).
struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  std::span<const float> values;
};

// A shared tensor of the round's starting model with its resolved scope.
struct SharedTensor {
  TensorView start;
  ResolvedScope scope;  // kGlobal or kDomain; site-scoped tensors are never part of a round
};

struct UpdateLimits {
  // Refuse an update whose L2 distance from the starting model exceeds this (0 = no bound).
  double max_update_norm = 0.0;
};

struct FoldOptions {
  // Validated updates queued before they are added to the sum in one pass (>= 1).
  int batch = 8;
  // Called with each range of a queued update's values once they have been added (the fold goes
  // through the model in windows of about 1 MB per update), e.g. to drop the pages of a file
  // mapping from resident memory. May be empty.
  std::function<void(std::span<const float>)> release;
};

// Whether Add reads every value to check it is finite.
enum class ValueCheck {
  kCheck,
  // The caller has checked every value of the update already (e.g. while receiving it). The
  // norm bound, when configured, still reads the values.
  kAlreadyChecked,
};

class ScopedFedAvg {
 public:
  // `recycled`: accumulators of an earlier round to reuse (e.g. the previous Finalize() result),
  // so a new round does not pay for fresh memory; those of the wrong size are dropped.
  ScopedFedAvg(std::vector<SharedTensor> tensors, UpdateLimits limits, FoldOptions fold = {},
               std::vector<std::vector<float>> recycled = {});

  // Validates `update` from `site` (which holds `site_joints`) and adds it with `weight` (its
  // sample count). The update must contain exactly the global tensors and the domain tensors of
  // the site's joints, float32, with the starting model's shapes, finite, within the norm bound.
  // On error nothing is added; the message names the site and the tensor.
  // The update is queued, not yet summed: its values must stay readable until it is folded in (by
  // the Add that fills the batch, Flush() or Finalize()); pending() tells how many wait.
  absl::Status Add(const std::string& site, std::span<const std::string> site_joints,
                   std::span<const TensorView> update, double weight,
                   ValueCheck check = ValueCheck::kCheck);

  // Adds every queued update to the sum now.
  void Flush();

  int num_updates() const { return num_updates_; }
  int pending() const { return static_cast<int>(pending_.size()); }

  // The averaged model in the order of the constructor's tensors. A tensor no update contributed
  // to (e.g. the head of a joint whose sites all dropped out) keeps its starting value. Flushes,
  // then hands over the accumulators (scaled in place): call it once, last.
  std::vector<std::vector<float>> Finalize();

 private:
  struct Pending {
    std::vector<std::span<const float>> values;  // by shared tensor; empty when not in the update
    float weight = 0;
  };

  absl::Status Validate(const std::string& site, std::span<const std::string> site_joints,
                        std::span<const TensorView> update, ValueCheck check,
                        std::vector<int>* order) const;

  std::vector<SharedTensor> tensors_;
  UpdateLimits limits_;
  FoldOptions fold_;
  std::vector<std::vector<float>> sums_;
  std::vector<bool> summed_;     // sums_[i] holds a sum (else its content is undefined)
  std::vector<double> weights_;  // total weight per tensor, pending updates included
  std::vector<Pending> pending_;
  int num_updates_ = 0;
};

// acc[i] = (init ? 0 : acc[i]) + sum over k of weights[k] * xs[k][i], each term added in the
// order of `xs` (so the result equals adding the updates one by one), reading every xs[k] once.
// All spans have acc's size. Single-threaded: the caller splits the work. Exposed for tests.
void FoldInto(std::span<float> acc, bool init, std::span<const std::span<const float>> xs,
              std::span<const float> weights);

// The server step of FedOpt with plain SGD, in place: averaged[i] = start[i] + lr * (averaged[i] -
// start[i]). lr = 1 leaves `averaged` as it is (FedAvg). InvalidArgument (nothing changed) when
// the sizes differ.
absl::Status ApplyServerStep(std::span<const float> start, std::span<float> averaged, double lr);

// Whether the float32 with these bits is NaN or infinite (exponent all ones). A test on the bit
// pattern, without branches, so the loops that use it vectorize.
inline bool IsNonFiniteBits(uint32_t bits) { return (bits & 0x7f800000u) == 0x7f800000u; }

// How many of v are NaN or infinite.
int64_t CountNonFinite(std::span<const float> v);

}  // namespace fedjoint::common::aggregation
