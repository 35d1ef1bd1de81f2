// fedjoint-coordinator: the consortium operator's side of a federation.
#include "common/cli/app.h"
#include "coordinator/check_config_command.h"
#include "coordinator/pki_command.h"
#include "coordinator/serve_command.h"

int main(int argc, char** argv) {
  fedjoint::common::cli::Program program(
      "fedjoint-coordinator",
      "fedjoint coordinator: runs federated rounds between hospital sites over mutual TLS");
  fedjoint::coordinator::AddCheckConfigCommand(program);
  fedjoint::coordinator::AddPkiCommand(program);
  fedjoint::coordinator::AddServeCommand(program);
  fedjoint::coordinator::AddStatusCommand(program);
  return program.Run(argc, argv);
}
