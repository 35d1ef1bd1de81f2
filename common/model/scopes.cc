#include "common/model/scopes.h"

#include <cstddef>

namespace fedjoint::common::model {
namespace {

// One alternative (no '|'): classic iterative matcher that backtracks to the last '*'.
bool MatchOne(std::string_view pattern, std::string_view name) {
  std::size_t p = 0, n = 0;
  std::size_t star = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
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

// The dot-delimited segment that starts at `pos` in `name`.
std::string_view SegmentAt(std::string_view name, std::size_t pos) {
  std::size_t end = name.find('.', pos);
  return name.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view name) {
  std::size_t start = 0;
  while (true) {
    std::size_t bar = pattern.find('|', start);
    std::string_view alternative =
        pattern.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
    if (MatchOne(alternative, name)) return true;
    if (bar == std::string_view::npos) return false;
    start = bar + 1;
  }
}

std::optional<std::string> MatchScope(std::string_view name, std::span<const ScopeRule> rules) {
  for (const ScopeRule& rule : rules) {
    if (GlobMatch(rule.pattern, name)) return rule.scope;
  }
  return std::nullopt;
}

std::optional<std::string> DomainOf(std::string_view name) {
  constexpr std::string_view kHeads = "heads.";
  constexpr std::string_view kNorms = ".norms.";
  if (name.starts_with(kHeads)) {
    std::string_view joint = SegmentAt(name, kHeads.size());
    if (!joint.empty()) return std::string(joint);
  }
  std::size_t pos = name.find(kNorms);
  if (pos != std::string_view::npos) {
    std::string_view domain = SegmentAt(name, pos + kNorms.size());
    if (!domain.empty()) return std::string(domain);
  }
  return std::nullopt;
}

}  // namespace fedjoint::common::model
