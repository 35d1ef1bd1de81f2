// `fedjoint-site evaluate --model DIR_OR_FILE --manifest FILE [--out DIR]`: segments every
// labelled scan of a manifest with a model and measures Dice, HD95 and ASSD (mm) per bone and
// subject on the scan's own grid. Writes metrics.csv (one row per subject and bone) and
// metrics.md (mean ± sd per bone, then the per-subject rows), and prints the summary table.
#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

void AddEvaluateCommand(common::cli::Program& program);

}  // namespace fedjoint::site_agent
