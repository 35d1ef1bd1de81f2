#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

// `fedjoint-site phantoms --joint J --subjects N --domain D --seed S --out DIR [--first-index I]`:
// writes the built-in synthetic data (NIfTI images, labels and a site manifest) into DIR.
void AddPhantomsCommand(common::cli::Program& program);

}  // namespace fedjoint::site_agent
