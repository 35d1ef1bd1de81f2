#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

// `fedjoint-site check-data MANIFEST`: validates a site manifest and every file it names.
void AddCheckDataCommand(common::cli::Program& program);

}  // namespace fedjoint::site_agent
