// The `check-config FILE [--print]` subcommand shared by both executables.
#pragma once

#include <filesystem>
#include <iostream>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "common/cli/app.h"
#include "common/config/config.h"
#include "common/config/yaml_writer.h"

namespace fedjoint::common::config {

// Validates `file` as a T (with `extra` after the built-in checks, see LoadConfig). Valid: writes
// "FILE: OK" to `out` (then, with `print`, the effective configuration with defaults applied and
// paths resolved) and returns OK. Invalid: returns the loader's status, which lists every problem.
template <typename T>
absl::Status RunCheckConfig(const std::filesystem::path& file, bool print, std::ostream& out,
                            CrossFieldCheck extra = nullptr) {
  absl::StatusOr<T> config = LoadConfig<T>(file, std::move(extra));
  if (!config.ok()) return config.status();
  out << file.string() << ": OK\n";
  if (print) {
    out << "# Effective configuration: defaults applied, relative paths resolved.\n"
        << ToYaml(*config);
  }
  return absl::OkStatus();
}

// Registers `check-config FILE [--print]` for configs of type T; `what` names them in the help
// ("coordinator", "site").
template <typename T>
void AddCheckConfigCommand(cli::Program& program, const std::string& what,
                           CrossFieldCheck extra = nullptr) {
  struct Options {
    std::string file;
    bool print = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub = program.app().add_subcommand(
      "check-config", "Validate a " + what + " config file and list every problem in it");
  sub->add_option("file", options->file, "The " + what + " config (YAML)")->required();
  sub->add_flag("--print", options->print,
                "Also print the effective configuration (defaults applied, paths resolved)");
  program.SetAction(sub, [options, extra] {
    return RunCheckConfig<T>(options->file, options->print, std::cout, extra);
  });
}

}  // namespace fedjoint::common::config
