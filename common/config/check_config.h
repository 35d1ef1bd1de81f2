// The `check-config FILE [--print]` subcommand shared by both executables.
#pragma once

#include <filesystem>
#include <ostream>

#include "absl/status/status.h"
#include "common/config/config.h"
#include "common/config/yaml_writer.h"

namespace fedjoint::common::config {

// Validates `file` as a T. Valid: writes "FILE: OK" to `out` (then, with `print`, the effective
// configuration with defaults applied and paths resolved) and returns OK. Invalid: returns the
// loader's status, which lists every problem.
template <typename T>
absl::Status RunCheckConfig(const std::filesystem::path& file, bool print, std::ostream& out) {
  absl::StatusOr<T> config = LoadConfig<T>(file);
  if (!config.ok()) return config.status();
  out << file.string() << ": OK\n";
  if (print) {
    out << "# Effective configuration: defaults applied, relative paths resolved.\n"
        << ToYaml(*config);
  }
  return absl::OkStatus();
}

}  // namespace fedjoint::common::config
