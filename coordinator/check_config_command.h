// `fedjoint-coordinator check-config FILE [--print]`: validates a coordinator config, listing every
// problem with its line, and optionally prints the effective configuration.
#pragma once

#include "common/cli/app.h"

namespace fedjoint::coordinator {

void AddCheckConfigCommand(common::cli::Program& program);

}  // namespace fedjoint::coordinator
