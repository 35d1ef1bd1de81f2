// fedjoint-site: the hospital's side of a federation, and the tools around local data and models.
#include "common/cli/app.h"
#include "common/config/check_config.h"
#include "site_agent/check_data_command.h"
#include "site_agent/evaluate_command.h"
#include "site_agent/phantoms_command.h"
#include "site_agent/pki_command.h"
#include "site_agent/run_command.h"
#include "site_agent/segment_command.h"
#include "site_agent/train_command.h"

int main(int argc, char** argv) {
  fedjoint::common::cli::Program program(
      "fedjoint-site",
      "fedjoint site agent: trains on local scans, shares only weights, segments new scans");
  fedjoint::common::config::AddCheckConfigCommand<fedjoint::v1::SiteConfig>(program, "site");
  fedjoint::site_agent::AddCheckDataCommand(program);
  fedjoint::site_agent::AddRunCommands(program);
  fedjoint::site_agent::AddPkiCommand(program);
  fedjoint::site_agent::AddPhantomsCommand(program);
  fedjoint::site_agent::AddTrainCommand(program);
  fedjoint::site_agent::AddEvaluateCommand(program);
  fedjoint::site_agent::AddSegmentCommand(program);
  return program.Run(argc, argv);
}
