// `fedjoint-site train --config FILE [--out DIR]`: local training alone, from the site config's
// `model` and `training` sections. With one joint in the manifest this is the paper's
// "individual" scheme; with several joints and variant `domain` (or `shared`) the multi-domain
// model (or the shared baseline). The run folder (default STATE_DIR/train) holds checkpoints,
// metrics.jsonl and, at the end, model.safetensors (the best validation checkpoint); rerunning
// the same command resumes an interrupted run.
#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

void AddTrainCommand(common::cli::Program& program);

}  // namespace fedjoint::site_agent
