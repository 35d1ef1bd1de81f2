#include "coordinator/phase_scope_check.h"

#include <string>

#include <fmt/format.h>

#include "common/aggregation/scope_policy.h"
#include "coordinator/initial_model.h"

namespace fedjoint::coordinator {
namespace {

// config.proto's default table (PhaseConfig.scopes), written for the segmentation U-Net. A phase
// that leaves its scopes out gets it whatever its network, so on a shape auto-encoder its first two
// rules have nothing to match: not the user's mistake, not reported. Pinned to the proto's default
// by tests/coordinator/phase_scope_check_test.cc.
bool IsDefaultTable(const google::protobuf::RepeatedPtrField<v1::ScopeRule>& rules) {
  static const std::pair<const char*, const char*> kDefault[] = {
      {"*norm*", "site"}, {"heads.*", "domain"}, {"*", "global"}};
  if (rules.size() != 3) return false;
  for (int i = 0; i < 3; ++i) {
    if (rules[i].pattern() != kDefault[i].first || rules[i].scope() != kDefault[i].second) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::vector<common::config::ConfigIssue> CheckScopesAgainstModels(
    const v1::CoordinatorConfig& config) {
  std::vector<common::config::ConfigIssue> issues;
  const auto& phases = config.job().phases();
  for (int p = 0; p < phases.size(); ++p) {
    const v1::PhaseConfig& phase = phases[p];
    const std::string path = fmt::format("job.phases[{}]", p);
    auto tensors = BuildInitialModel(phase);
    if (!tensors.ok()) {
      issues.push_back({path + ".model", std::string(tensors.status().message())});
      continue;
    }
    auto policy = common::aggregation::ScopePolicy::FromProto(phase.scopes(), phase.model());
    if (!policy.ok()) {
      issues.push_back({path + ".scopes", std::string(policy.status().message())});
      continue;
    }
    std::vector<std::string> names;
    for (const OwnedTensor& t : *tensors) names.push_back(t.name);
    for (const std::string& name : names) {
      if (auto scope = policy->Resolve(name); !scope.ok()) {
        issues.push_back({path + ".scopes", std::string(scope.status().message())});
        break;
      }
    }
    if (IsDefaultTable(phase.scopes())) continue;
    for (int rule : policy->UnusedRules(names)) {
      issues.push_back(
          {fmt::format("{}.scopes[{}].pattern", path, rule),
           fmt::format("'{}' decides the scope of no tensor of phase '{}''s {} network (first "
                       "match wins; its tensors are named like '{}')",
                       phase.scopes(rule).pattern(), phase.name(), phase.model().architecture(),
                       names.empty() ? std::string("?") : names.front())});
    }
  }
  return issues;
}

common::config::CrossFieldCheck ScopesAgainstModelsCheck() {
  return [](const google::protobuf::Message& message) {
    return CheckScopesAgainstModels(static_cast<const v1::CoordinatorConfig&>(message));
  };
}

}  // namespace fedjoint::coordinator
