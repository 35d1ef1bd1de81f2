#pragma once

#include "common/cli/app.h"

namespace fedjoint::coordinator {

// `fedjoint-coordinator serve --config FILE`: runs the federation until the job is done.
void AddServeCommand(common::cli::Program& program);
// `fedjoint-coordinator status --state DIR`: rounds, sites, last contact, per-site metrics.
void AddStatusCommand(common::cli::Program& program);

}  // namespace fedjoint::coordinator
