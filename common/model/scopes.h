// Parameter scopes by name: a rule table of glob patterns decides whether a tensor of the network
// is `global`, `domain` or `site` (DESIGN.md, "Parameter scopes"). Pure string code, no torch, so
// the coordinator, the site agent and config validation all classify names the same way.
//
// Naming scheme of the networks in this module (a wire format: keys of every weights file):
//   encoder.conv1.weight                          torchvision ResNet names, prefixed "encoder."
//   encoder.layer2.0.downsample.0.weight
//   encoder.bn1.norms.<domain>.weight             every normalization tensor (affine params AND
//   encoder.layer1.0.bn2.norms.<domain>.running_mean   running stats) has the segment
//   encoder.layer2.0.downsample.1.norms.<domain>.bias  ".norms.<domain>." where <domain> is a
//   decoder.blocks.<i>.bn1.norms.<domain>.weight       joint name, or "shared" in the shared
//   variant decoder.blocks.<i>.conv1.weight heads.<joint>.weight / heads.<joint>.bias     one
//   output head per joint (domain variant) head.weight / head.bias                       the single
//   head of the shared variant projections.<stage>.fc1.weight                projection heads
//   ("stem", "layer1".."layer4")
// So "*.norms.*" (or the looser "*norm*|*bn*") selects every normalization tensor, "heads.*" the
// per-joint heads, and everything else is a convolution or linear layer.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace fedjoint::common::model {

struct ScopeRule {
  std::string pattern;  // glob, see GlobMatch
  std::string scope;    // e.g. "global", "domain", "site"
};

// Glob over a whole tensor name: '*' matches any run of characters (dots included), '?' exactly
// one character, '|' separates alternatives ("*norm*|*bn*"). Everything else matches itself.
bool GlobMatch(std::string_view pattern, std::string_view name);

// The scope of the first rule whose pattern matches `name` (first match wins, so put specific
// rules before general ones and end the table with "*" for a default). nullopt when none matches.
std::optional<std::string> MatchScope(std::string_view name, std::span<const ScopeRule> rules);

// The domain a tensor belongs to by name: <joint> for "heads.<joint>.*" and for any name with a
// ".norms.<domain>." segment ("shared" in the shared variant); nullopt for other tensors.
std::optional<std::string> DomainOf(std::string_view name);

}  // namespace fedjoint::common::model
