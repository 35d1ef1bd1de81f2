// Supervised contrastive loss (Khosla et al. 2020, "SupCon"), with the domain (joint) as the
// class, external negatives for federated sites, a general positive-mask core (reused by the
// positional contrastive loss) and a multi-scale wrapper.
//
// For anchor i with similarity s_ia = z_i·z_a / τ:
//   L_i = −1/|P(i)| · Σ_{p∈P(i)} ( s_ip − log Σ_{a∈A(i)} exp(s_ia) )
// A(i) = every other local sample (i excluded) plus every external embedding; P(i) ⊆ A(i) the
// positives. Computed with log-sum-exp, so no exp overflows whatever τ.
//
// Decisions:
//  - Embeddings are L2-normalized inside (options.normalize, default on), external ones too:
//    prototypes are means of unit vectors, shorter than 1, and only their direction should count.
//    With normalize(false) the caller guarantees unit norm (or wants raw dot products).
//  - Anchors with no positive (|P(i)| = 0) are skipped: they contribute nothing and do not count
//    in the mean; with no valid anchor at all the loss is 0 (differentiable, zero gradient).
//    kNone returns [N] per-anchor losses with 0 for skipped anchors.
//  - Only local samples are anchors; externals (other domains' prototypes sent by the
//    coordinator: a site usually holds one joint and so has no local negatives) join A(i).
//    An external with the anchor's label is a positive when external_positives is on (default):
//    the global prototype of the site's own domain then pulls local features toward the
//    consortium's view of that domain. Off: same-label externals still join A(i) as
//    denominators only.
//  - No base-temperature rescaling (the reference code multiplies by τ/τ_base; here τ_base = τ).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "common/losses/reduction.h"

namespace fedjoint::common::losses {

struct SupConLossOptions {
  // temperature must be finite and > 0.
  absl::Status Validate() const;

  TORCH_ARG(double, temperature) = 0.1;
  TORCH_ARG(bool, normalize) = true;
  TORCH_ARG(bool, external_positives) = true;
  TORCH_ARG(Reduction, reduction) = Reduction::kMean;
};

namespace functional {

// The core. z: [N, D] local embeddings (the anchors). positive_mask: [N, N] bool, P(i) among the
// local samples (the diagonal is ignored: i is never its own positive or denominator).
// external: optional [M, D] embeddings that join every A(i); external_positive_mask: optional
// [N, M] bool, which externals are positives of each anchor (undefined = none).
at::Tensor supcon_loss_with_mask(const at::Tensor& z, const at::Tensor& positive_mask,
                                 const SupConLossOptions& options = {},
                                 const at::Tensor& external = {},
                                 const at::Tensor& external_positive_mask = {});

// Labels version: positives share the anchor's label. labels: [N] integer. external_labels: [M]
// integer, required when external is given (used for positives if external_positives is on).
at::Tensor supcon_loss(const at::Tensor& z, const at::Tensor& labels,
                       const SupConLossOptions& options = {}, const at::Tensor& external = {},
                       const at::Tensor& external_labels = {});

}  // namespace functional

class SupConLossImpl : public torch::nn::Cloneable<SupConLossImpl> {
 public:
  explicit SupConLossImpl(const SupConLossOptions& options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& z, const at::Tensor& labels, const at::Tensor& external = {},
                     const at::Tensor& external_labels = {});

  SupConLossOptions options;
};
TORCH_MODULE(SupConLoss);

// ---- Multi-scale: one SupCon per network depth, weighted sum --------------------------------

struct MultiScaleSupConLossOptions {
  absl::Status Validate() const;

  // One weight per scale (>= 0, at least one > 0); the number of embeddings passed to forward
  // must match.
  TORCH_ARG(std::vector<double>, scale_weights) = {1.0};
  TORCH_ARG(SupConLossOptions, supcon) = {};
};

namespace functional {

// z_per_scale[s]: [N, D_s] (D_s may differ by scale; N and labels shared). external_per_scale:
// empty (no externals) or one [M, D_s] per scale, sharing external_labels [M].
// Returns Σ_s w_s · SupCon_s.
at::Tensor multi_scale_supcon_loss(const std::vector<at::Tensor>& z_per_scale,
                                   const at::Tensor& labels,
                                   const MultiScaleSupConLossOptions& options,
                                   const std::vector<at::Tensor>& external_per_scale = {},
                                   const at::Tensor& external_labels = {});

}  // namespace functional

class MultiScaleSupConLossImpl : public torch::nn::Cloneable<MultiScaleSupConLossImpl> {
 public:
  explicit MultiScaleSupConLossImpl(const MultiScaleSupConLossOptions& options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const std::vector<at::Tensor>& z_per_scale, const at::Tensor& labels,
                     const std::vector<at::Tensor>& external_per_scale = {},
                     const at::Tensor& external_labels = {});

  MultiScaleSupConLossOptions options;
};
TORCH_MODULE(MultiScaleSupConLoss);

}  // namespace fedjoint::common::losses
