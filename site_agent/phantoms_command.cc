#include "site_agent/phantoms_command.h"

#include <chrono>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "absl/strings/str_join.h"
#include "common/data/phantom.h"
#include "common/data/phantom_dataset.h"
#include "common/log/logging.h"

namespace fedjoint::site_agent {

namespace {

struct PhantomsArgs {
  common::data::PhantomOptions options;
  int subjects = 10;
  std::string out;
};

}  // namespace

void AddPhantomsCommand(common::cli::Program& program) {
  auto args = std::make_shared<PhantomsArgs>();
  common::data::PhantomOptions& o = args->options;
  CLI::App* sub = program.app().add_subcommand(
      "phantoms",
      "Write synthetic pediatric joint MRI (the built-in data): NIfTI images, bone labels and a "
      "site manifest");
  sub->add_option("--joint", o.joint,
                  "Joint: " + absl::StrJoin(common::data::PhantomJoints(), ", "))
      ->required();
  sub->add_option("--subjects", args->subjects, "Number of subjects (>= 1)")->capture_default_str();
  sub->add_option("--domain", o.domain,
                  "MR contrast: " + absl::StrJoin(common::data::PhantomDomains(), ", "))
      ->capture_default_str();
  sub->add_option("--seed", o.seed, "Random seed: the same seed gives identical files")
      ->capture_default_str();
  sub->add_option("--out", args->out, "Output folder (created if missing)")->required();
  sub->add_option("--first-index", o.first_subject,
                  "Index of the first subject (sites sharing a seed use disjoint ranges)")
      ->capture_default_str();
  sub->add_option("--labeled", o.labeled_subjects,
                  "How many subjects get a label file (-1: all; the rest are unlabeled scans)")
      ->capture_default_str();
  sub->add_option("--size", o.in_plane_size, "Pixels along each in-plane axis (0: default)")
      ->capture_default_str();
  sub->add_option("--slices", o.num_slices, "Number of slices (0: the joint's default)")
      ->capture_default_str();
  sub->add_option("--min-age", o.min_age_years, "Youngest age drawn, years")->capture_default_str();
  sub->add_option("--max-age", o.max_age_years, "Oldest age drawn, years")->capture_default_str();
  // The scanner of a site: field strength shows as noise (a 1.5 T scanner is noisier than a 3 T
  // one at the same protocol), coil and shimming as bias field, protocol as pixel size and slices.
  sub->add_option("--noise-scale", o.noise_scale,
                  "Multiplier of the Rician noise level (e.g. 1.6 for a 1.5 T scanner; 0: none)")
      ->capture_default_str();
  sub->add_option("--bias-scale", o.bias_scale,
                  "Multiplier of the bias-field strength (coil inhomogeneity; 0: none)")
      ->capture_default_str();
  sub->add_option("--pixel-mm", o.in_plane_spacing_mm,
                  "In-plane pixel size in mm (0: fitted to the child, 0.64-0.92 mm)")
      ->capture_default_str();
  sub->add_option("--slice-thickness", o.slice_thickness_mm, "Slice thickness in mm")
      ->capture_default_str();
  sub->add_option("--slice-gap", o.slice_gap_mm, "Gap between slices in mm")->capture_default_str();
  sub->add_flag("--share-anatomy", o.share_anatomy_across_domains,
                "Same subjects (bones, pose) for every --domain with this seed: one subject in "
                "several contrasts. Default: each domain draws its own subjects");
  program.SetAction(sub, [args]() -> absl::Status {
    if (args->subjects < 1) {
      return absl::InvalidArgumentError(
          fmt::format("--subjects must be at least 1, got {}", args->subjects));
    }
    if (absl::Status valid = common::data::ValidatePhantomOptions(args->options); !valid.ok()) {
      return valid;
    }
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<common::data::PhantomDataset> dataset =
        common::data::WritePhantomDataset(args->options, args->subjects, args->out);
    if (!dataset.ok()) return dataset.status();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    common::log::Get("site")->info(
        "wrote {} {} {} phantom(s) to {} ({:.1f} MB, {:.1f} s); manifest: {}",
        dataset->subjects.size(), args->options.joint, args->options.domain, args->out,
        static_cast<double>(dataset->bytes_written) / 1e6, seconds, dataset->manifest.string());
    return absl::OkStatus();
  });
}

}  // namespace fedjoint::site_agent
