#include "coordinator/check_config_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "common/config/check_config.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::coordinator {

void AddCheckConfigCommand(common::cli::Program& program) {
  struct Options {
    std::string file;
    bool print = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub = program.app().add_subcommand(
      "check-config", "Validate a coordinator config file and list every problem in it");
  sub->add_option("file", options->file, "The coordinator config (YAML)")->required();
  sub->add_flag("--print", options->print,
                "Also print the effective configuration (defaults applied, paths resolved)");
  program.SetAction(sub, [options] {
    return common::config::RunCheckConfig<v1::CoordinatorConfig>(options->file, options->print,
                                                                 std::cout);
  });
}

}  // namespace fedjoint::coordinator
