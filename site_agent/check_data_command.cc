#include "site_agent/check_data_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/data/check_data.h"
#include "common/data/manifest.h"

namespace fedjoint::site_agent {

void AddCheckDataCommand(common::cli::Program& program) {
  auto manifest_path = std::make_shared<std::string>();
  CLI::App* sub = program.app().add_subcommand(
      "check-data", "Validate a site manifest and every scan and label it names");
  sub->add_option("manifest", *manifest_path, "Site manifest (YAML)")->required();
  program.SetAction(sub, [manifest_path]() -> absl::Status {
    auto manifest = common::data::LoadManifest(*manifest_path);
    if (!manifest.ok()) return manifest.status();
    common::data::DataReport report = common::data::CheckData(*manifest);
    std::cout << report.ToText(*manifest);
    if (int unusable = report.NumUnusable(); unusable > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(*manifest_path, ": ", unusable, " of ", report.subjects.size(),
                       " subject(s) unusable (see the problems listed above)"));
    }
    return absl::OkStatus();
  });
}

}  // namespace fedjoint::site_agent
