// fedjoint-site: the hospital's side of a federation, and the tools around local data and models.
#include "common/cli/app.h"

int main(int argc, char** argv) {
  fedjoint::common::cli::Program program(
      "fedjoint-site",
      "fedjoint site agent: trains on local scans, shares only weights, segments new scans");
  return program.Run(argc, argv);
}
