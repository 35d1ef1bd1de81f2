// Supervision of a multi-domain batch through per-joint output heads: each sample's labels only
// reach the head of its own joint (the joints have different label sets, so another head's
// output for that sample has no target at all).
//
// Entry points for the forms a model can produce:
//  - head j applied only to the samples of joint j, with their batch indices (common/model's
//    UNetOutput::logits and ::sample_indices): gather_head_batches() pairs them with targets;
//  - one HeadBatch per joint built by the caller;
//  - every head applied to every sample: select_own_head() picks each sample's head.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/dice_ce_loss.h"

namespace fedjoint::common::losses {

// The output of one joint's head over the samples of that joint, and their targets.
struct HeadBatch {
  int64_t head = 0;   // head (joint) index, for reporting
  at::Tensor logits;  // [n_j, C_j, *spatial]
  at::Tensor target;  // [n_j, *spatial] indices or [n_j, C_j, *spatial] one-hot
};

enum class HeadWeighting {
  kBySamples,  // Σ_j n_j·L_j / Σ_j n_j: every sample counts the same, whatever its joint
  kEqual,      // mean of L_j over the heads present in the batch: every joint counts the same
};

struct MultiHeadLossOptions {
  absl::Status Validate() const;

  TORCH_ARG(HeadWeighting, weighting) = HeadWeighting::kBySamples;
  // The per-head loss of MultiHeadLoss (the functional form takes any loss function). Shared by
  // all heads, so class weights only make sense when every head has the same label count.
  TORCH_ARG(DiceCELossOptions, head_loss) = {};
};

// Loss of one head's logits against that head's targets; must reduce to a scalar.
using HeadLossFn = std::function<at::Tensor(const at::Tensor& logits, const at::Tensor& target)>;

namespace functional {

// Heads with no sample (n_j = 0) are skipped; at least one sample must remain. The per-head
// losses are expected to be means over their samples (as DiceCE is).
at::Tensor multi_head_loss(const std::vector<HeadBatch>& heads, const HeadLossFn& head_loss,
                           HeadWeighting weighting = HeadWeighting::kBySamples);

// logits_per_head[j]: [n_j, C_j, *spatial] for the samples sample_indices[j] ([n_j] int64, input
// batch indices), undefined/empty when joint j has no sample; target: [B, ...] for the whole
// input batch. Returns one HeadBatch per head with samples (targets gathered by sample_indices).
std::vector<HeadBatch> gather_head_batches(const std::vector<at::Tensor>& logits_per_head,
                                           const std::vector<at::Tensor>& sample_indices,
                                           const at::Tensor& target);

// logits_per_head[j]: head j applied to all B samples, [B, C_j, *spatial] (C_j may differ).
// head_of_sample: [B] integer, the head of each sample's joint. target: [B, ...] for all samples.
// Returns one HeadBatch per head that has samples, in head order, rows kept in batch order.
std::vector<HeadBatch> select_own_head(const std::vector<at::Tensor>& logits_per_head,
                                       const at::Tensor& head_of_sample, const at::Tensor& target);

}  // namespace functional

class MultiHeadLossImpl : public torch::nn::Cloneable<MultiHeadLossImpl> {
 public:
  explicit MultiHeadLossImpl(const MultiHeadLossOptions& options = {});
  // Submodule "head_loss" (a DiceCELoss shared by every head).
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const std::vector<HeadBatch>& heads);

  MultiHeadLossOptions options;
  DiceCELoss head_loss{nullptr};
};
TORCH_MODULE(MultiHeadLoss);

}  // namespace fedjoint::common::losses
