#include "site_agent/check_config_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "common/config/check_config.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent {

void AddCheckConfigCommand(common::cli::Program& program) {
  struct Options {
    std::string file;
    bool print = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub = program.app().add_subcommand(
      "check-config", "Validate a site config file and list every problem in it");
  sub->add_option("file", options->file, "The site config (YAML)")->required();
  sub->add_flag("--print", options->print,
                "Also print the effective configuration (defaults applied, paths resolved)");
  program.SetAction(sub, [options] {
    return common::config::RunCheckConfig<v1::SiteConfig>(options->file, options->print, std::cout);
  });
}

}  // namespace fedjoint::site_agent
