// Logging setup: one named spdlog logger per component ("coordinator", "site", "data", ...), all
// writing to stderr with one format: human-readable by default (coloured on a terminal), or one
// JSON object per line with `--log-format json` for log collectors. Never log patient data.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "absl/status/status.h"

namespace fedjoint::common::log {

enum class Format { kHuman, kJson };

struct Options {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  Format format = Format::kHuman;
};

// Parses "trace" ... "off"; the error names the bad value and lists the valid ones.
absl::Status ParseLevel(std::string_view text, spdlog::level::level_enum* level);
absl::Status ParseFormat(std::string_view text, Format* format);

// Configures every logger (existing and future). Call once at startup, after CLI parsing.
absl::Status Setup(const Options& options);

// Records which settings the command line gave explicitly (--log-level, --log-format): those win
// over a configuration file's `logging:` section.
void SetCommandLineOverrides(bool level, bool format);
// Applies a configuration file's `logging:` section (an empty value keeps the current setting),
// except what the command line set explicitly. Called when a command loads its config.
absl::Status ApplyConfigSettings(std::string_view level, std::string_view format);

// The logger for `component`, created on first use with the configured sink and format.
std::shared_ptr<spdlog::logger> Get(const std::string& component);

}  // namespace fedjoint::common::log
