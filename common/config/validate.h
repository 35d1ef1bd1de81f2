// Cross-field rules of the two top-level configs: what the per-field rules in config.proto cannot
// express (relations between fields, uniqueness, address syntax). Each issue names the key path it
// is about; the loader places it at that key's line in the file.
#pragma once

#include <vector>

#include "common/config/yaml_loader.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::common::config {

std::vector<ConfigIssue> ValidateCoordinatorConfig(const v1::CoordinatorConfig& config);
std::vector<ConfigIssue> ValidateSiteConfig(const v1::SiteConfig& config);

}  // namespace fedjoint::common::config
