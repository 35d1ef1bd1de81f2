// The one place where a site decides what leaves it. Trained weights are split by the task's scope
// policy into what may be sent (global tensors, and domain tensors of the site's own joints) and
// what stays (site-scoped tensors, and integer bookkeeping such as BatchNorm's
// num_batches_tracked). Domain tensors of joints the site does not hold are neither: it did not
// train them and must not send them. Nothing else in the site agent chooses tensors to upload.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/aggregation/scope_policy.h"
#include "common/tensors/torch_tensors.h"
#include "fedjoint/v1/federation.pb.h"

namespace fedjoint::site_agent {

struct ScopedWeights {
  common::tensors::TensorMap shared;  // may leave the site
  common::tensors::TensorMap site;    // stays at the site (saved in its state directory)
};

class EgressFilter {
 public:
  // The filter of one task, for a site holding `site_joints`. Errors: the task's scope rules are
  // invalid (see ScopePolicy).
  static absl::StatusOr<EgressFilter> ForTask(const fedjoint::v1::Task& task,
                                              std::vector<std::string> site_joints);

  // Errors: a tensor that matches no rule, or a shared float tensor that is not float32.
  absl::StatusOr<ScopedWeights> Split(const common::tensors::TensorMap& weights) const;
  // Only the tensors that stay at the site (e.g. of a freshly built network).
  absl::StatusOr<common::tensors::TensorMap> SiteScoped(
      const common::tensors::TensorMap& weights) const;

 private:
  EgressFilter(common::aggregation::ScopePolicy policy, std::vector<std::string> site_joints)
      : policy_(std::move(policy)), site_joints_(std::move(site_joints)) {}

  common::aggregation::ScopePolicy policy_;
  std::vector<std::string> site_joints_;
};

}  // namespace fedjoint::site_agent
