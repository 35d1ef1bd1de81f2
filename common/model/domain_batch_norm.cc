#include "common/model/domain_batch_norm.h"

#include <torch/torch.h>

namespace fedjoint::common::model {

DomainGrouping GroupByDomain(const at::Tensor& domains, int64_t num_domains) {
  TORCH_CHECK(domains.dim() == 1 && domains.scalar_type() == at::kLong,
              "domain ids must be an int64 vector [B], got ", domains.scalar_type(), " ",
              domains.sizes());
  at::Tensor ids = domains.to(at::kCPU).contiguous();
  const int64_t* id = ids.data_ptr<int64_t>();
  const int64_t batch = ids.numel();
  DomainGrouping grouping;
  grouping.sizes.assign(num_domains, 0);
  bool sorted = true;
  for (int64_t i = 0; i < batch; ++i) {
    TORCH_CHECK(id[i] >= 0 && id[i] < num_domains, "domain id ", id[i], " of sample ", i,
                " is out of range [0, ", num_domains, ")");
    ++grouping.sizes[id[i]];
    if (i > 0 && id[i] < id[i - 1]) sorted = false;
  }
  if (sorted) return grouping;
  // Counting sort: stable, O(B + D).
  std::vector<int64_t> next(num_domains, 0);
  for (int64_t d = 1; d < num_domains; ++d) next[d] = next[d - 1] + grouping.sizes[d - 1];
  std::vector<int64_t> order(batch), inverse(batch);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t position = next[id[i]]++;
    order[position] = i;
    inverse[i] = position;
  }
  grouping.order = torch::tensor(order, torch::kLong).to(domains.device());
  grouping.inverse = torch::tensor(inverse, torch::kLong).to(domains.device());
  return grouping;
}

DomainBatchNorm2dImpl::DomainBatchNorm2dImpl(DomainBatchNorm2dOptions options)
    : options_(std::move(options)) {
  TORCH_CHECK(!options_.domains().empty(), "DomainBatchNorm2d needs at least one domain");
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> children;
  for (const std::string& domain : options_.domains()) {
    for (const auto& [name, unused] : children) {
      TORCH_CHECK(name != domain, "DomainBatchNorm2d: duplicate domain '", domain, "'");
    }
    auto norm = std::make_shared<torch::nn::BatchNorm2dImpl>(
        torch::nn::BatchNorm2dOptions(options_.num_features())
            .eps(options_.eps())
            .momentum(options_.momentum()));
    children.emplace_back(domain, norm);
    norms_.push_back(std::move(norm));
  }
  register_module("norms", torch::nn::ModuleDict(children));
}

torch::nn::BatchNorm2dImpl& DomainBatchNorm2dImpl::norm(int64_t domain) {
  TORCH_CHECK(domain >= 0 && domain < num_domains(), "domain id ", domain, " is out of range [0, ",
              num_domains(), ")");
  return *norms_[domain];
}

at::Tensor DomainBatchNorm2dImpl::forward(const at::Tensor& x, int64_t domain) {
  return norm(domain).forward(x);
}

at::Tensor DomainBatchNorm2dImpl::forward(const at::Tensor& x, const at::Tensor& domains) {
  TORCH_CHECK(domains.dim() == 1 && domains.size(0) == x.size(0), "expected ", x.size(0),
              " domain ids, got ", domains.sizes());
  DomainGrouping grouping = GroupByDomain(domains, num_domains());
  if (!grouping.order.defined()) return forward_grouped(x, grouping.sizes);
  at::Tensor grouped = forward_grouped(x.index_select(0, grouping.order), grouping.sizes);
  return grouped.index_select(0, grouping.inverse);
}

at::Tensor DomainBatchNorm2dImpl::forward_grouped(const at::Tensor& x,
                                                  std::span<const int64_t> group_sizes) {
  TORCH_CHECK(static_cast<int64_t>(group_sizes.size()) == num_domains(), "expected ", num_domains(),
              " group sizes, got ", group_sizes.size());
  int64_t total = 0, present = 0, only = 0;
  for (int64_t d = 0; d < num_domains(); ++d) {
    total += group_sizes[d];
    if (group_sizes[d] > 0) {
      ++present;
      only = d;
    }
  }
  TORCH_CHECK(total == x.size(0), "group sizes sum to ", total, " but the batch has ", x.size(0),
              " samples");
  if (present <= 1) return norms_[only]->forward(x);
  // split_with_sizes rather than one narrow per group: its backward is a single cat, whereas
  // each narrow's backward allocates a zero tensor of the whole batch (~15% of a training step).
  std::vector<at::Tensor> groups =
      x.split_with_sizes(c10::IntArrayRef(group_sizes.data(), group_sizes.size()));
  std::vector<at::Tensor> parts;
  parts.reserve(present);
  for (int64_t d = 0; d < num_domains(); ++d) {
    if (group_sizes[d] > 0) parts.push_back(norms_[d]->forward(groups[d]));
  }
  return torch::cat(parts, 0);
}

CumulativeNormStatistics::CumulativeNormStatistics(torch::nn::Module& model,
                                                   const std::string& domain) {
  const std::string suffix = ".norms." + domain;
  for (const auto& item : model.named_modules()) {
    if (!item.key().ends_with(suffix)) continue;
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get())) {
      const c10::optional<double> momentum = bn->options.momentum();
      layers_.emplace_back(bn, momentum ? std::optional<double>(*momentum) : std::nullopt);
      bn->reset_running_stats();
      bn->options.momentum(c10::nullopt);  // cumulative average
    }
  }
}

CumulativeNormStatistics::~CumulativeNormStatistics() {
  for (auto& [bn, momentum] : layers_) {
    bn->options.momentum(momentum ? c10::optional<double>(*momentum) : c10::nullopt);
  }
}

}  // namespace fedjoint::common::model
