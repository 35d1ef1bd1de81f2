// Domain-specific batch normalization (Boutillon et al. 2022): one BatchNorm2d per domain (joint),
// each with its own affine parameters and running statistics, behind shared convolutions.
//
// Tensor names: "norms.<domain>.{weight,bias,running_mean,running_var,num_batches_tracked}", so
// any module owning one under name N exposes "N.norms.<domain>.*" (see tensor_naming.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace torch::nn {
class BatchNorm2dImpl;
}  // namespace torch::nn

namespace fedjoint::common::model {

struct DomainBatchNorm2dOptions {
  DomainBatchNorm2dOptions(int64_t num_features, std::vector<std::string> domains)
      : num_features_(num_features), domains_(std::move(domains)) {}
  TORCH_ARG(int64_t, num_features);
  // Child names, in domain-id order. One entry ("shared") gives a plain BatchNorm2d.
  TORCH_ARG(std::vector<std::string>, domains);
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(double, momentum) = 0.1;
};

// A batch arranged by domain: samples of domain 0 first, then domain 1, ... (stable order).
struct DomainGrouping {
  std::vector<int64_t> sizes;  // samples per domain; sums to the batch size
  at::Tensor order;  // int64 [B]: sorted position i holds input sample order[i]; undefined when
                     // the input was already grouped (then no copy is needed)
  at::Tensor
      inverse;  // int64 [B]: input sample i sits at sorted position inverse[i] (or undefined)
};

// Groups a per-sample domain vector (int64 [B], values in [0, num_domains)). Throws c10::Error
// naming the bad value when a domain id is out of range.
DomainGrouping GroupByDomain(const at::Tensor& domains, int64_t num_domains);

class DomainBatchNorm2dImpl : public torch::nn::Module {
 public:
  explicit DomainBatchNorm2dImpl(DomainBatchNorm2dOptions options);

  // The whole batch belongs to `domain`.
  at::Tensor forward(const at::Tensor& x, int64_t domain);
  // Per-sample domains (int64 [B], any order): each domain's samples are normalized together with
  // that domain's statistics (in training mode, batch statistics of that group only) and the
  // result is returned in input order.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& domains);
  // `x` already grouped by domain with `group_sizes[d]` samples of domain d (see GroupByDomain).
  // The network calls this form: it sorts the batch once instead of once per normalization layer.
  at::Tensor forward_grouped(const at::Tensor& x, std::span<const int64_t> group_sizes);

  int64_t num_domains() const { return static_cast<int64_t>(norms_.size()); }
  torch::nn::BatchNorm2dImpl& norm(int64_t domain);
  const DomainBatchNorm2dOptions& options() const { return options_; }

 private:
  DomainBatchNorm2dOptions options_;
  std::vector<std::shared_ptr<torch::nn::BatchNorm2dImpl>> norms_;
};
TORCH_MODULE(DomainBatchNorm2d);

// Re-estimating one domain's normalization statistics: while it lives, every BatchNorm of
// `model` named "*.norms.<domain>" starts from reset statistics and accumulates a cumulative
// average (not BatchNorm's exponential one, so every batch counts equally); forward passes in
// training mode without gradients fill them. The destructor restores each layer's momentum.
// Nothing but running statistics changes.
class CumulativeNormStatistics {
 public:
  CumulativeNormStatistics(torch::nn::Module& model, const std::string& domain);
  ~CumulativeNormStatistics();
  CumulativeNormStatistics(const CumulativeNormStatistics&) = delete;
  CumulativeNormStatistics& operator=(const CumulativeNormStatistics&) = delete;

  // Layers found (0: the model has no normalization for that domain).
  size_t size() const { return layers_.size(); }

 private:
  std::vector<std::pair<torch::nn::BatchNorm2dImpl*, std::optional<double>>> layers_;
};

}  // namespace fedjoint::common::model
