#include "common/losses/multi_head_loss.h"

#include <ostream>

#include <torch/torch.h>

#include "common/base/status.h"

namespace fedjoint::common::losses {

absl::Status MultiHeadLossOptions::Validate() const {
  return base::Annotate(head_loss_.Validate(), "MultiHeadLossOptions.head_loss");
}

namespace functional {

at::Tensor multi_head_loss(const std::vector<HeadBatch>& heads, const HeadLossFn& head_loss,
                           HeadWeighting weighting) {
  TORCH_CHECK(head_loss, "multi_head_loss: no head loss function given");
  at::Tensor total;
  int64_t samples = 0;
  int64_t heads_used = 0;
  for (const HeadBatch& head : heads) {
    TORCH_CHECK(head.logits.defined() && head.target.defined(), "multi_head_loss: head ", head.head,
                " has undefined logits or target");
    const int64_t n = head.logits.size(0);
    TORCH_CHECK(head.target.size(0) == n, "multi_head_loss: head ", head.head, " has ", n,
                " logit rows but ", head.target.size(0), " target rows");
    if (n == 0) continue;
    at::Tensor loss = head_loss(head.logits, head.target);
    TORCH_CHECK(loss.dim() == 0, "multi_head_loss: the head loss must return a scalar, got shape ",
                loss.sizes());
    at::Tensor term = weighting == HeadWeighting::kBySamples ? loss * static_cast<double>(n) : loss;
    total = total.defined() ? total + term : term;
    samples += n;
    ++heads_used;
  }
  TORCH_CHECK(heads_used > 0, "multi_head_loss: the batch has no sample for any head");
  return total / static_cast<double>(weighting == HeadWeighting::kBySamples ? samples : heads_used);
}

std::vector<HeadBatch> gather_head_batches(const std::vector<at::Tensor>& logits_per_head,
                                           const std::vector<at::Tensor>& sample_indices,
                                           const at::Tensor& target) {
  TORCH_CHECK(logits_per_head.size() == sample_indices.size(),
              "gather_head_batches: ", logits_per_head.size(), " heads of logits but ",
              sample_indices.size(), " index lists");
  std::vector<HeadBatch> result;
  for (size_t j = 0; j < logits_per_head.size(); ++j) {
    const at::Tensor& logits = logits_per_head[j];
    const at::Tensor& rows = sample_indices[j];
    if (!logits.defined() || logits.numel() == 0) continue;
    TORCH_CHECK(rows.defined() && rows.dim() == 1 && rows.size(0) == logits.size(0),
                "gather_head_batches: head ", j, " has ", logits.size(0),
                " logit rows but its sample_indices are ",
                rows.defined() ? rows.sizes() : c10::IntArrayRef{});
    result.push_back({static_cast<int64_t>(j), logits,
                      target.index_select(0, rows.to(target.device()).to(at::kLong))});
  }
  return result;
}

std::vector<HeadBatch> select_own_head(const std::vector<at::Tensor>& logits_per_head,
                                       const at::Tensor& head_of_sample, const at::Tensor& target) {
  TORCH_CHECK(head_of_sample.dim() == 1 && !at::isFloatingType(head_of_sample.scalar_type()),
              "select_own_head: head_of_sample must be a 1-D integer tensor, got ",
              head_of_sample.scalar_type(), " ", head_of_sample.sizes());
  const int64_t batch = head_of_sample.size(0);
  TORCH_CHECK(target.size(0) == batch, "select_own_head: target has ", target.size(0),
              " samples, head_of_sample ", batch);
  const at::Tensor heads = head_of_sample.to(at::kLong).cpu();
  if (batch > 0) {
    const int64_t low = heads.min().item<int64_t>();
    const int64_t high = heads.max().item<int64_t>();
    TORCH_CHECK(low >= 0 && high < static_cast<int64_t>(logits_per_head.size()),
                "select_own_head: head indices must lie in [0, ", logits_per_head.size(),
                "), got [", low, ", ", high, "]");
  }
  std::vector<HeadBatch> result;
  for (int64_t j = 0; j < static_cast<int64_t>(logits_per_head.size()); ++j) {
    const at::Tensor rows = (heads == j).nonzero().flatten();
    if (rows.numel() == 0) continue;
    TORCH_CHECK(logits_per_head[j].size(0) == batch, "select_own_head: head ", j, " logits have ",
                logits_per_head[j].size(0), " rows for a batch of ", batch);
    const at::Tensor logits_rows = rows.to(logits_per_head[j].device());
    result.push_back({j, logits_per_head[j].index_select(0, logits_rows),
                      target.index_select(0, rows.to(target.device()))});
  }
  return result;
}

}  // namespace functional

MultiHeadLossImpl::MultiHeadLossImpl(const MultiHeadLossOptions& options_) : options(options_) {
  reset();
}

void MultiHeadLossImpl::reset() {
  ThrowIfInvalid(options.Validate());
  head_loss = register_module("head_loss", DiceCELoss(options.head_loss()));
}

void MultiHeadLossImpl::pretty_print(std::ostream& stream) const {
  stream << "fedjoint::MultiHeadLoss(weighting="
         << (options.weighting() == HeadWeighting::kBySamples ? "by_samples" : "equal") << ")";
}

at::Tensor MultiHeadLossImpl::forward(const std::vector<HeadBatch>& heads) {
  return functional::multi_head_loss(
      heads,
      [this](const at::Tensor& logits, const at::Tensor& target) {
        return head_loss->forward(logits, target);
      },
      options.weighting());
}

}  // namespace fedjoint::common::losses
