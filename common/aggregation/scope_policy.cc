#include "common/aggregation/scope_policy.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fedjoint::common::aggregation {

absl::Status CheckPattern(std::string_view pattern) {
  if (pattern.empty()) return absl::InvalidArgumentError("the pattern is empty");
  for (char c : pattern) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
        c == '*' || c == '?') {
      continue;
    }
    if (c == '|') {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", std::string(pattern),
          "': '|' is not part of the pattern grammar (only '*' and '?' are wildcards); write one "
          "rule per alternative"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("'", std::string(pattern), "': character '", std::string(1, c),
                     "' is not allowed (tensor names are letters, digits, '_', '-' and '.'; "
                     "the wildcards are '*' and '?')"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ScopePolicy> ScopePolicy::Create(std::vector<ScopeRule> rules,
                                                std::vector<std::string> joints) {
  for (size_t i = 0; i < rules.size(); ++i) {
    if (absl::Status s = CheckPattern(rules[i].pattern); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("scope rule ", i, ": ", s.message()));
    }
  }
  return ScopePolicy(std::move(rules), std::move(joints));
}

absl::StatusOr<ScopePolicy> ScopePolicy::FromProto(
    const google::protobuf::RepeatedPtrField<v1::ScopeRule>& rules, const v1::ModelConfig& model) {
  std::vector<ScopeRule> parsed;
  for (int i = 0; i < rules.size(); ++i) {
    absl::StatusOr<Scope> scope = ParseScope(rules[i].scope());
    if (!scope.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("scope rule ", i, ": ", scope.status().message()));
    }
    parsed.push_back({rules[i].pattern(), *scope});
  }
  std::vector<std::string> joints;
  for (const auto& joint : model.joints()) joints.push_back(joint.name());
  return Create(std::move(parsed), std::move(joints));
}

absl::StatusOr<ResolvedScope> ScopePolicy::Resolve(std::string_view name) const {
  return ResolveScope(name, rules_, joints_);
}

std::vector<int> ScopePolicy::UnusedRules(std::span<const std::string> names) const {
  std::vector<bool> used(rules_.size(), false);
  for (const std::string& name : names) {
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (GlobMatch(rules_[i].pattern, name)) {
        used[i] = true;
        break;
      }
    }
  }
  std::vector<int> unused;
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (!used[i]) unused.push_back(static_cast<int>(i));
  }
  return unused;
}

}  // namespace fedjoint::common::aggregation
