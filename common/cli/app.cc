#include "common/cli/app.h"

#include <iostream>

#include "common/log/logging.h"

namespace fedjoint::common::cli {

Program::Program(std::string name, std::string description)
    : app_(std::move(description), name), name_(std::move(name)) {
  app_.set_version_flag("--version", name_ + " " + FEDJOINT_VERSION);
  app_.add_option("--log-level", log_level_, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  app_.add_option("--log-format", log_format_, "human (default) or json (one object per line)")
      ->capture_default_str();
  app_.require_subcommand(1);
  app_.fallthrough();  // global options may also follow the subcommand
}

void Program::SetAction(CLI::App* sub, Action action) {
  sub->callback([this, action = std::move(action)] { action_ = action; });
}

int Program::Run(int argc, char** argv) {
  try {
    app_.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app_.exit(e);
  }
  log::Options options;
  options.level = log_level_;
  absl::Status setup = log::ParseFormat(log_format_, &options.format);
  if (setup.ok()) setup = log::Setup(options);
  // A command's config file may set logging too (common/config applies it on load); what was
  // given here explicitly wins.
  log::SetCommandLineOverrides(app_.count("--log-level") > 0, app_.count("--log-format") > 0);
  if (!setup.ok()) {
    std::cerr << name_ << ": " << setup.message() << "\n";
    return 2;
  }
  if (!action_) {
    std::cerr << name_ << ": no command chosen (see --help)\n";
    return 2;
  }
  absl::Status status;
  try {
    status = action_();
  } catch (const std::exception& e) {
    // Adapters convert library exceptions to Status; reaching here is a bug, still reported
    // cleanly rather than as an abort.
    status = absl::InternalError(std::string("unexpected exception: ") + e.what());
  }
  if (!status.ok()) {
    std::cerr << name_ << ": error: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace fedjoint::common::cli
