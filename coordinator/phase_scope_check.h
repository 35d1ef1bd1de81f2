// The check of a coordinator config that needs each phase's network: every written scope rule
// must decide the scope of at least one tensor of the phase's own model. A rule that matches
// nothing (a typo, another glob dialect, a rule meant for another architecture) would otherwise
// be silent, and the tensors it meant would fall through to a later rule and leave the sites.
// Run by `check-config` and `serve` after the built-in checks (common/config LoadConfig's
// `extra`).
#pragma once

#include <vector>

#include "common/config/yaml_loader.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::coordinator {

std::vector<common::config::ConfigIssue> CheckScopesAgainstModels(
    const v1::CoordinatorConfig& config);

// The same, in the form LoadConfig takes.
common::config::CrossFieldCheck ScopesAgainstModelsCheck();

}  // namespace fedjoint::coordinator
