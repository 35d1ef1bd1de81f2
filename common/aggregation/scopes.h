// Parameter scopes: which tensors leave a site and over which sites they are averaged.
//
//   global          averaged over every site in the round
//   domain:<joint>  averaged over the sites that hold that joint (e.g. the joint's output head)
//   site            never leaves the site (normalization statistics and affine parameters: FedBN)
//
// A rule table (glob pattern -> scope, first match wins) is part of every task, so a site and the
// coordinator always agree on what may be sent. For a `domain` rule the joint is the dotted
// segment of the parameter name that names a configured joint ("heads.knee.weight" -> knee).
//
// A joint's own tensors (model::DomainOf: "heads.<joint>.*" and "*.norms.<joint>.*") are never
// global: a global rule that matches one gives it the domain scope of its joint, so a site that
// does not hold the joint never sends it, whatever the rules say. Site rules keep it at the site.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace fedjoint::common::aggregation {

enum class Scope { kGlobal, kDomain, kSite };

struct ScopeRule {
  std::string pattern;  // glob over the dotted name: '*' any run of characters, '?' one character
  Scope scope = Scope::kGlobal;
};

struct ResolvedScope {
  Scope scope = Scope::kGlobal;
  std::string joint;  // set for kDomain only

  bool operator==(const ResolvedScope&) const = default;
};

// Whether a tensor stays at the site: site-scoped, or not floating point. Integer tensors
// (BatchNorm's num_batches_tracked) are local bookkeeping, never averaged, whatever the rules say;
// the coordinator's models never hold them.
inline bool StaysAtSite(Scope scope, bool is_floating_point) {
  return scope == Scope::kSite || !is_floating_point;
}

absl::StatusOr<Scope> ParseScope(std::string_view text);
std::string_view ScopeName(Scope scope);
// "global", "domain:knee" or "site".
std::string DescribeScope(const ResolvedScope& scope);

// Shell-style glob match over the whole name ('*' may cross dots).
bool GlobMatch(std::string_view pattern, std::string_view name);

// The scope of `name` under `rules` (first matching rule; a joint's own tensor under a global rule
// is domain-scoped, see above). Errors: no rule matches; a domain rule
// matches but no dotted segment of the name is one of `joints` (the rule table and the model
// disagree, which would otherwise silently average one joint's head with another's).
absl::StatusOr<ResolvedScope> ResolveScope(std::string_view name, std::span<const ScopeRule> rules,
                                           std::span<const std::string> joints);

}  // namespace fedjoint::common::aggregation
