// `fedjoint-coordinator pki ...`: the consortium operator's certificate authority.
//   pki init   --out DIR [--host NAME]... [--ip ADDR]... [--force]
//   pki sign   CSR --pki DIR [--days N] [--force]
//   pki revoke NAME --pki DIR
//   pki list   --pki DIR
//   pki crl    --pki DIR        (re-sign the CRL before its nextUpdate)
// The folder layout is documented in common/security/pki.h.
#pragma once

#include "common/cli/app.h"

namespace fedjoint::coordinator {

void AddPkiCommand(common::cli::Program& program);

}  // namespace fedjoint::coordinator
