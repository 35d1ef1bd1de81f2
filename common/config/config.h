// Typed entry points: load a coordinator or site config (or any schema message) from YAML with
// every field rule, default and cross-field check applied.
//
//   ASSIGN_OR_RETURN(v1::CoordinatorConfig config,
//                    common::config::LoadConfig<v1::CoordinatorConfig>(path));
#pragma once

#include <filesystem>
#include <string_view>
#include <type_traits>

#include "absl/status/statusor.h"
#include "common/base/status_macros.h"
#include "common/config/validate.h"
#include "common/config/yaml_loader.h"
#include "common/log/logging.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::common::config {

// The cross-field check of a top-level config type (none for other messages).
template <typename T>
CrossFieldCheck CrossFieldCheckFor() {
  if constexpr (std::is_same_v<T, v1::CoordinatorConfig>) {
    return [](const google::protobuf::Message& message) {
      return ValidateCoordinatorConfig(static_cast<const v1::CoordinatorConfig&>(message));
    };
  } else if constexpr (std::is_same_v<T, v1::SiteConfig>) {
    return [](const google::protobuf::Message& message) {
      return ValidateSiteConfig(static_cast<const v1::SiteConfig&>(message));
    };
  } else {
    return nullptr;
  }
}

// The cross-field check of T, then `extra` (e.g. a check that needs the phase's network, which this
// library cannot build) when the first found nothing: `extra` may assume a config valid so far.
template <typename T>
CrossFieldCheck CrossFieldCheckWith(CrossFieldCheck extra) {
  CrossFieldCheck base = CrossFieldCheckFor<T>();
  if (!extra) return base;
  return [base, extra](const google::protobuf::Message& message) {
    std::vector<ConfigIssue> issues = base ? base(message) : std::vector<ConfigIssue>{};
    if (issues.empty()) issues = extra(message);
    return issues;
  };
}

// Errors: NotFound for a missing file; InvalidArgument listing every problem in it (those of
// `extra` too, at their lines).
// Loading a program's config (coordinator or site) also applies its `logging:` section, so every
// command that reads one logs as it says; --log-level / --log-format given explicitly win.
template <typename T>
absl::StatusOr<T> LoadConfig(const std::filesystem::path& file, CrossFieldCheck extra = nullptr) {
  T config;
  RETURN_IF_ERROR(LoadYamlInto(file, &config, CrossFieldCheckWith<T>(std::move(extra))));
  if constexpr (std::is_same_v<T, v1::CoordinatorConfig> || std::is_same_v<T, v1::SiteConfig>) {
    if (config.has_logging()) {
      RETURN_IF_ERROR(
          log::ApplyConfigSettings(config.logging().level(), config.logging().format()));
    }
  }
  return config;
}

// The same from text (tests, embedded configs); see ParseYamlInto for the arguments.
template <typename T>
absl::StatusOr<T> ParseConfig(std::string_view yaml_text, std::string_view display_name,
                              const std::filesystem::path& base_dir = {}) {
  T config;
  RETURN_IF_ERROR(
      ParseYamlInto(yaml_text, display_name, base_dir, &config, CrossFieldCheckFor<T>()));
  return config;
}

}  // namespace fedjoint::common::config
