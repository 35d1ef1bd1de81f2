#include "common/losses/supcon_loss.h"

#include <cmath>
#include <limits>
#include <ostream>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/base/status.h"

namespace fedjoint::common::losses {

absl::Status SupConLossOptions::Validate() const {
  if (!std::isfinite(temperature_) || temperature_ <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SupConLossOptions: temperature must be finite and > 0, got ", temperature_));
  }
  return absl::OkStatus();
}

absl::Status MultiScaleSupConLossOptions::Validate() const {
  if (scale_weights_.empty()) {
    return absl::InvalidArgumentError("MultiScaleSupConLossOptions: scale_weights is empty");
  }
  bool any_positive = false;
  for (size_t s = 0; s < scale_weights_.size(); ++s) {
    const double w = scale_weights_[s];
    if (!std::isfinite(w) || w < 0) {
      return absl::InvalidArgumentError(absl::StrCat("MultiScaleSupConLossOptions: scale_weights[",
                                                     s, "] must be finite and >= 0, got ", w));
    }
    any_positive = any_positive || w > 0;
  }
  if (!any_positive) {
    return absl::InvalidArgumentError(
        "MultiScaleSupConLossOptions: every scale weight is 0, the loss would be constant");
  }
  return base::Annotate(supcon_.Validate(), "MultiScaleSupConLossOptions.supcon");
}

namespace functional {
namespace {

at::Tensor MaybeNormalize(const at::Tensor& z, bool normalize) {
  if (!normalize) return z;
  namespace F = torch::nn::functional;
  return F::normalize(z, F::NormalizeFuncOptions().p(2).dim(1).eps(1e-12));
}

// A loss of 0 that still depends on `z`, so backward() works when nothing contributes.
at::Tensor ZeroLike(const at::Tensor& z) { return z.sum() * 0.0; }

}  // namespace

at::Tensor supcon_loss_with_mask(const at::Tensor& z, const at::Tensor& positive_mask,
                                 const SupConLossOptions& options, const at::Tensor& external,
                                 const at::Tensor& external_positive_mask) {
  ThrowIfInvalid(options.Validate());
  TORCH_CHECK(z.dim() == 2 && at::isFloatingType(z.scalar_type()),
              "supcon_loss: embeddings must be a floating [N, D] tensor, got ", z.scalar_type(),
              " ", z.sizes());
  const int64_t n = z.size(0);
  TORCH_CHECK(positive_mask.dim() == 2 && positive_mask.size(0) == n && positive_mask.size(1) == n,
              "supcon_loss: positive_mask must be [N, N] = [", n, ", ", n, "], got ",
              positive_mask.sizes());
  const auto bool_options = z.options().dtype(at::kBool);
  const at::Tensor not_self = torch::eye(n, bool_options).logical_not();
  at::Tensor anchors = MaybeNormalize(z, options.normalize());
  at::Tensor candidates = anchors;
  at::Tensor positives = positive_mask.to(z.device()).to(at::kBool).logical_and(not_self);
  at::Tensor in_denominator = not_self;

  if (external.defined() && external.numel() > 0) {
    TORCH_CHECK(external.dim() == 2 && external.size(1) == z.size(1),
                "supcon_loss: external embeddings must be [M, D=", z.size(1), "], got ",
                external.sizes());
    const int64_t m = external.size(0);
    candidates = torch::cat(
        {anchors, MaybeNormalize(external.to(z.options().dtype()), options.normalize())}, 0);
    at::Tensor external_positives = torch::zeros({n, m}, bool_options);
    if (external_positive_mask.defined()) {
      TORCH_CHECK(external_positive_mask.dim() == 2 && external_positive_mask.size(0) == n &&
                      external_positive_mask.size(1) == m,
                  "supcon_loss: external_positive_mask must be [N, M] = [", n, ", ", m, "], got ",
                  external_positive_mask.sizes());
      external_positives = external_positive_mask.to(z.device()).to(at::kBool);
    }
    positives = torch::cat({positives, external_positives}, 1);
    in_denominator = torch::cat({in_denominator, torch::ones({n, m}, bool_options)}, 1);
  }

  // Keep only anchors with a positive: the others would need exp/log of empty sets, whose
  // gradients are NaN even when multiplied by 0.
  const at::Tensor positive_count = positives.sum(1);
  const at::Tensor rows = (positive_count > 0).nonzero().flatten();
  if (rows.numel() == 0) {
    at::Tensor zero = ZeroLike(z);
    return options.reduction() == Reduction::kNone ? zero.expand({n}).contiguous() : zero;
  }
  const at::Tensor logits =
      anchors.index_select(0, rows).matmul(candidates.t()) / options.temperature();  // [R, K]
  const at::Tensor row_positives = positives.index_select(0, rows);
  const at::Tensor log_denominator =
      logits
          .masked_fill(in_denominator.index_select(0, rows).logical_not(),
                       -std::numeric_limits<double>::infinity())
          .logsumexp(1);
  // Σ_p log(exp(s_p)/Σ_a exp(s_a)) = Σ_p s_p − |P|·lse; positives are all in the denominator.
  const at::Tensor count = positive_count.index_select(0, rows).to(logits.scalar_type());
  const at::Tensor mean_positive_logit =
      logits.masked_fill(row_positives.logical_not(), 0.0).sum(1) / count;
  const at::Tensor per_anchor = log_denominator - mean_positive_logit;  // [R]

  switch (options.reduction()) {
    case Reduction::kMean:
      return per_anchor.mean();
    case Reduction::kSum:
      return per_anchor.sum();
    case Reduction::kNone:
      return torch::zeros({n}, per_anchor.options()).index_copy(0, rows, per_anchor);
  }
  TORCH_CHECK(false, "supcon_loss: unknown Reduction ", static_cast<int>(options.reduction()));
}

at::Tensor supcon_loss(const at::Tensor& z, const at::Tensor& labels,
                       const SupConLossOptions& options, const at::Tensor& external,
                       const at::Tensor& external_labels) {
  TORCH_CHECK(labels.dim() == 1 && !at::isFloatingType(labels.scalar_type()),
              "supcon_loss: labels must be a 1-D integer tensor, got ", labels.scalar_type(), " ",
              labels.sizes());
  TORCH_CHECK(z.dim() == 2 && labels.size(0) == z.size(0), "supcon_loss: ", labels.size(0),
              " labels for embeddings of shape ", z.sizes());
  const at::Tensor local_labels = labels.to(z.device()).to(at::kLong);
  const at::Tensor positive_mask = local_labels.unsqueeze(1) == local_labels.unsqueeze(0);
  at::Tensor external_positive_mask;
  if (external.defined() && external.numel() > 0) {
    TORCH_CHECK(external_labels.defined() && external_labels.dim() == 1 &&
                    external_labels.size(0) == external.size(0) &&
                    !at::isFloatingType(external_labels.scalar_type()),
                "supcon_loss: external embeddings ", external.sizes(),
                " need one integer label each (external_labels)");
    if (options.external_positives()) {
      external_positive_mask =
          local_labels.unsqueeze(1) == external_labels.to(z.device()).to(at::kLong).unsqueeze(0);
    }
  }
  return supcon_loss_with_mask(z, positive_mask, options, external, external_positive_mask);
}

at::Tensor multi_scale_supcon_loss(const std::vector<at::Tensor>& z_per_scale,
                                   const at::Tensor& labels,
                                   const MultiScaleSupConLossOptions& options,
                                   const std::vector<at::Tensor>& external_per_scale,
                                   const at::Tensor& external_labels) {
  ThrowIfInvalid(options.Validate());
  const auto& weights = options.scale_weights();
  TORCH_CHECK(z_per_scale.size() == weights.size(), "multi_scale_supcon_loss: ", z_per_scale.size(),
              " scales of embeddings for ", weights.size(), " scale weights");
  TORCH_CHECK(external_per_scale.empty() || external_per_scale.size() == weights.size(),
              "multi_scale_supcon_loss: ", external_per_scale.size(),
              " scales of external embeddings for ", weights.size(), " scales");
  at::Tensor total;
  for (size_t s = 0; s < weights.size(); ++s) {
    if (weights[s] == 0) continue;
    const at::Tensor external = external_per_scale.empty() ? at::Tensor() : external_per_scale[s];
    at::Tensor term = weights[s] * supcon_loss(z_per_scale[s], labels, options.supcon(), external,
                                               external_labels);
    total = total.defined() ? total + term : term;
  }
  return total;
}

}  // namespace functional

SupConLossImpl::SupConLossImpl(const SupConLossOptions& options_) : options(options_) { reset(); }

void SupConLossImpl::reset() { ThrowIfInvalid(options.Validate()); }

void SupConLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::SupConLoss(temperature=" << options.temperature()
         << ", normalize=" << options.normalize()
         << ", external_positives=" << options.external_positives() << ")";
}

at::Tensor SupConLossImpl::forward(const at::Tensor& z, const at::Tensor& labels,
                                   const at::Tensor& external, const at::Tensor& external_labels) {
  return functional::supcon_loss(z, labels, options, external, external_labels);
}

MultiScaleSupConLossImpl::MultiScaleSupConLossImpl(const MultiScaleSupConLossOptions& options_)
    : options(options_) {
  reset();
}

void MultiScaleSupConLossImpl::reset() { ThrowIfInvalid(options.Validate()); }

void MultiScaleSupConLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::MultiScaleSupConLoss(scales=" << options.scale_weights().size()
         << ", temperature=" << options.supcon().temperature() << ")";
}

at::Tensor MultiScaleSupConLossImpl::forward(const std::vector<at::Tensor>& z_per_scale,
                                             const at::Tensor& labels,
                                             const std::vector<at::Tensor>& external_per_scale,
                                             const at::Tensor& external_labels) {
  return functional::multi_scale_supcon_loss(z_per_scale, labels, options, external_per_scale,
                                             external_labels);
}

}  // namespace fedjoint::common::losses
