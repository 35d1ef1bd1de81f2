// The shape shared by both executables: CLI11 subcommands, the global options --version,
// --log-level and --log-format, and one way to turn a subcommand's absl::Status into an exit code.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"

namespace fedjoint::common::cli {

// What a subcommand does once the command line is parsed. Subcommands register themselves with
// `SetAction(sub, ...)`; the main function runs the selected action after logging is configured.
using Action = std::function<absl::Status()>;

class Program {
 public:
  Program(std::string name, std::string description);

  CLI::App& app() { return app_; }
  // Makes `sub` run `action` when it is the subcommand chosen on the command line.
  void SetAction(CLI::App* sub, Action action);
  // Parses, configures logging, runs the chosen subcommand. Exit codes: 0 success, 1 the command
  // failed (the error is printed with its cause), 2 the command line was wrong.
  int Run(int argc, char** argv);

 private:
  CLI::App app_;
  std::string name_;
  std::string log_level_ = "info";
  std::string log_format_ = "human";
  Action action_;
};

}  // namespace fedjoint::common::cli
