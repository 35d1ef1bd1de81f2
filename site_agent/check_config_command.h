// `fedjoint-site check-config FILE [--print]`: validates a site config, listing every
// problem with its line, and optionally prints the effective configuration.
#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

void AddCheckConfigCommand(common::cli::Program& program);

}  // namespace fedjoint::site_agent
