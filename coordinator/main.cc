// fedjoint-coordinator: the consortium operator's side of a federation.
#include "common/cli/app.h"

int main(int argc, char** argv) {
  fedjoint::common::cli::Program program(
      "fedjoint-coordinator",
      "fedjoint coordinator: runs federated rounds between hospital sites over mutual TLS");
  return program.Run(argc, argv);
}
