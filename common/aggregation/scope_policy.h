// The one scope policy of a phase: its rule table (glob pattern -> scope, first match wins) parsed
// and checked once, with the phase's joints, then asked for the scope of each tensor name. The
// coordinator (which tensors a round averages, over which sites), the site's egress filter (what
// leaves the site) and config validation all use this class, so they cannot disagree.
//
// Pattern grammar: letters, digits, '_', '-' and '.' match themselves; '*' matches any run of
// characters (dots included) and '?' exactly one. Nothing else is allowed, so a rule written in
// another glob dialect ("*norm*|*bn*", "heads.{a,b}") is refused with a reason instead of silently
// matching nothing and letting the tensors it meant fall through to a later rule.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/aggregation/scopes.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::common::aggregation {

// OK when `pattern` is a non-empty pattern of the grammar above; else InvalidArgument saying which
// character is not allowed and what to write instead.
absl::Status CheckPattern(std::string_view pattern);

class ScopePolicy {
 public:
  // Errors (InvalidArgument, naming the rule by its index): a pattern outside the grammar, an
  // unknown scope.
  static absl::StatusOr<ScopePolicy> Create(std::vector<ScopeRule> rules,
                                            std::vector<std::string> joints);
  // From the rules and model of a phase (coordinator) or task (site).
  static absl::StatusOr<ScopePolicy> FromProto(
      const google::protobuf::RepeatedPtrField<v1::ScopeRule>& rules, const v1::ModelConfig& model);

  // The scope of one tensor (see ResolveScope for the errors).
  absl::StatusOr<ResolvedScope> Resolve(std::string_view name) const;

  // Indices of the rules that decide the scope of none of `names` (never matched, or always
  // matched by an earlier rule first). A rule that matches no tensor of the model is a mistake in
  // the config: config checks report it.
  std::vector<int> UnusedRules(std::span<const std::string> names) const;

  const std::vector<ScopeRule>& rules() const { return rules_; }
  const std::vector<std::string>& joints() const { return joints_; }

 private:
  ScopePolicy(std::vector<ScopeRule> rules, std::vector<std::string> joints)
      : rules_(std::move(rules)), joints_(std::move(joints)) {}

  std::vector<ScopeRule> rules_;
  std::vector<std::string> joints_;
};

}  // namespace fedjoint::common::aggregation
