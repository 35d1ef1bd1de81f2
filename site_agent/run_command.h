#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

// `fedjoint-site run --config FILE`: join the consortium and take part in rounds until the job
// ends. `fedjoint-site pull-model --config FILE --out DIR`: download and verify the latest
// global model, merged with this site's own tensors.
void AddRunCommands(common::cli::Program& program);

}  // namespace fedjoint::site_agent
