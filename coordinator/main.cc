// fedjoint-coordinator: the consortium operator's side of a federation.
#include "common/cli/app.h"
#include "common/config/check_config.h"
#include "coordinator/phase_scope_check.h"
#include "coordinator/pki_command.h"
#include "coordinator/serve_command.h"

int main(int argc, char** argv) {
  fedjoint::common::cli::Program program(
      "fedjoint-coordinator",
      "fedjoint coordinator: runs federated rounds between hospital sites over mutual TLS");
  fedjoint::common::config::AddCheckConfigCommand<fedjoint::v1::CoordinatorConfig>(
      program, "coordinator", fedjoint::coordinator::ScopesAgainstModelsCheck());
  fedjoint::coordinator::AddPkiCommand(program);
  fedjoint::coordinator::AddServeCommand(program);
  fedjoint::coordinator::AddStatusCommand(program);
  return program.Run(argc, argv);
}
