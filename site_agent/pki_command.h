// `fedjoint-site pki request --site NAME --out DIR [--force]`: makes the site's private key
// (0600, it never leaves the site) and a certificate signing request for the consortium operator.
#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

void AddPkiCommand(common::cli::Program& program);

}  // namespace fedjoint::site_agent
