#include "common/aggregation/scopes.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/model/tensor_naming.h"

namespace fedjoint::common::aggregation {

absl::StatusOr<Scope> ParseScope(std::string_view text) {
  if (text == "global") return Scope::kGlobal;
  if (text == "domain") return Scope::kDomain;
  if (text == "site") return Scope::kSite;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown scope '", std::string(text), "' (expected global, domain or site)"));
}

std::string_view ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kGlobal:
      return "global";
    case Scope::kDomain:
      return "domain";
    case Scope::kSite:
      return "site";
  }
  return "?";
}

std::string DescribeScope(const ResolvedScope& scope) {
  if (scope.scope == Scope::kDomain) return "domain:" + scope.joint;
  return std::string(ScopeName(scope.scope));
}

bool GlobMatch(std::string_view pattern, std::string_view name) {
  // Iterative matcher with single-star backtracking: linear in practice, no recursion depth issue.
  size_t p = 0, n = 0, star = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

absl::StatusOr<ResolvedScope> ResolveScope(std::string_view name, std::span<const ScopeRule> rules,
                                           std::span<const std::string> joints) {
  for (const ScopeRule& rule : rules) {
    if (!GlobMatch(rule.pattern, name)) continue;
    if (rule.scope == Scope::kGlobal) {
      // A joint's own tensor (its head, its normalization) under a global rule is averaged over
      // the sites that hold the joint only: a site without it never trained it and would send
      // its untouched initial copy.
      std::optional<std::string> owner = model::DomainOf(name);
      if (owner && std::find(joints.begin(), joints.end(), *owner) != joints.end()) {
        return ResolvedScope{Scope::kDomain, *owner};
      }
    }
    if (rule.scope != Scope::kDomain) return ResolvedScope{rule.scope, ""};
    for (absl::string_view segment :
         absl::StrSplit(absl::string_view(name.data(), name.size()), '.')) {
      for (const std::string& joint : joints) {
        if (segment == joint) return ResolvedScope{Scope::kDomain, joint};
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", std::string(name), "' matches domain rule '", rule.pattern,
                     "' but none of its name segments is a configured joint"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("parameter '", std::string(name), "' matches no scope rule"));
}

}  // namespace fedjoint::common::aggregation
