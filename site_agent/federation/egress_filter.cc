#include "site_agent/federation/egress_filter.h"

#include <algorithm>

#include <ATen/core/Tensor.h>

#include "absl/strings/str_cat.h"

namespace fedjoint::site_agent {

namespace agg = common::aggregation;
using common::tensors::TensorMap;

absl::StatusOr<EgressFilter> EgressFilter::ForTask(const fedjoint::v1::Task& task,
                                                   std::vector<std::string> site_joints) {
  absl::StatusOr<agg::ScopePolicy> policy =
      agg::ScopePolicy::FromProto(task.scopes(), task.model());
  if (!policy.ok()) return policy.status();
  return EgressFilter(std::move(*policy), std::move(site_joints));
}

absl::StatusOr<ScopedWeights> EgressFilter::Split(const TensorMap& weights) const {
  ScopedWeights out;
  for (const auto& [name, tensor] : weights) {
    absl::StatusOr<agg::ResolvedScope> scope = policy_.Resolve(name);
    if (!scope.ok()) return scope.status();
    if (agg::StaysAtSite(scope->scope, at::isFloatingType(tensor.scalar_type()))) {
      out.site[name] = tensor;
      continue;
    }
    if (scope->scope == agg::Scope::kDomain &&
        std::find(site_joints_.begin(), site_joints_.end(), scope->joint) == site_joints_.end()) {
      continue;  // another joint's tensor: this site neither trained nor may send it
    }
    if (tensor.scalar_type() != at::kFloat) {
      return absl::InvalidArgumentError(
          absl::StrCat("shared tensor '", name, "' is ",
                       std::string(c10::toString(tensor.scalar_type())), ", expected float32"));
    }
    out.shared[name] = tensor;
  }
  return out;
}

absl::StatusOr<TensorMap> EgressFilter::SiteScoped(const TensorMap& weights) const {
  absl::StatusOr<ScopedWeights> split = Split(weights);
  if (!split.ok()) return split.status();
  return std::move(split->site);
}

}  // namespace fedjoint::site_agent
