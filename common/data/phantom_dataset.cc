#include "common/data/phantom_dataset.h"

#include <system_error>

#include <fmt/format.h>

#include "common/base/atomic_file.h"
#include "common/base/status_macros.h"
#include "common/data/volume_io.h"
#include "common/log/logging.h"

namespace fedjoint::common::data {

namespace fs = std::filesystem;

std::string PhantomImageFileName(int subject) {
  return fmt::format("subject-{:03d}_image.nii.gz", subject);
}

std::string PhantomLabelFileName(int subject) {
  return fmt::format("subject-{:03d}_label.nii.gz", subject);
}

std::string PhantomManifestYaml(const PhantomOptions& options,
                                const std::vector<PhantomDatasetEntry>& entries) {
  std::string yaml = "# fedjoint site manifest\n";
  yaml +=
      fmt::format("# synthetic phantoms: fedjoint-site phantoms --joint {} --domain {} --seed {}\n",
                  options.joint, options.domain, options.seed);
  yaml += "subjects:\n";
  for (const PhantomDatasetEntry& e : entries) {
    yaml += fmt::format("  - id: {}\n", e.id);
    yaml += fmt::format("    image: {}\n", e.image);
    if (e.label) yaml += fmt::format("    label: {}\n", *e.label);
    yaml += fmt::format("    joint: {}\n", options.joint);
    yaml += fmt::format("    domain: {}\n", options.domain);
  }
  yaml += "labels:\n";
  yaml += fmt::format("  {}: {{", options.joint);
  absl::StatusOr<std::vector<std::string>> bones = PhantomBoneNames(options.joint);
  if (bones.ok()) {
    for (size_t b = 0; b < bones->size(); ++b) {
      yaml += fmt::format("{}{}: {}", b == 0 ? "" : ", ", b + 1, (*bones)[b]);
    }
  }
  yaml += "}\n";
  return yaml;
}

namespace {

absl::StatusOr<std::uintmax_t> FileSize(const fs::path& path) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return absl::InternalError(
        fmt::format("cannot read the size of {}: {}", path.string(), ec.message()));
  }
  return size;
}

}  // namespace

absl::StatusOr<PhantomDataset> WritePhantomDataset(const PhantomOptions& options, int n_subjects,
                                                   const fs::path& out_dir) {
  RETURN_IF_ERROR(ValidatePhantomOptions(options));
  if (n_subjects < 1) {
    return absl::InvalidArgumentError(
        fmt::format("the number of phantom subjects must be >= 1, got {}", n_subjects));
  }
  if (options.first_subject > 1000000 - n_subjects) {
    return absl::InvalidArgumentError(
        fmt::format("phantom subject indices must stay below 1000000, got {} + {}",
                    options.first_subject, n_subjects));
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir)) {
    return absl::InvalidArgumentError(
        fmt::format("cannot create the output folder {}: {}", out_dir.string(),
                    ec ? ec.message() : std::string("a file with that name exists")));
  }

  auto logger = log::Get("data");
  PhantomDataset dataset;
  dataset.manifest = out_dir / "manifest.yaml";
  std::string metadata = "id,age_years,sex,scale,pose_deg,physis_closed,noise_sigma,labeled\n";
  for (int n = 0; n < n_subjects; ++n) {
    const int subject = options.first_subject + n;
    ASSIGN_OR_RETURN(PhantomSubject phantom, GeneratePhantom(options, subject));
    PhantomDatasetEntry entry;
    entry.id = phantom.id;
    entry.image = PhantomImageFileName(subject);
    entry.age_years = phantom.age_years;
    entry.sex = phantom.sex;
    const bool labeled = options.labeled_subjects < 0 || n < options.labeled_subjects;
    RETURN_IF_ERROR(WriteVolume(phantom.image, out_dir / entry.image));
    ASSIGN_OR_RETURN(std::uintmax_t image_bytes, FileSize(out_dir / entry.image));
    dataset.bytes_written += image_bytes;
    if (labeled) {
      entry.label = PhantomLabelFileName(subject);
      RETURN_IF_ERROR(WriteVolume(phantom.label, out_dir / *entry.label));
      ASSIGN_OR_RETURN(std::uintmax_t label_bytes, FileSize(out_dir / *entry.label));
      dataset.bytes_written += label_bytes;
    }
    metadata += fmt::format("{},{:.2f},{},{:.3f},{:.1f},{},{:.2f},{}\n", phantom.id,
                            phantom.age_years, phantom.sex, phantom.scale, phantom.pose_deg,
                            phantom.physis_closed ? 1 : 0, phantom.noise_sigma, labeled ? 1 : 0);
    logger->debug("phantom {} written ({} years, {})", phantom.id, phantom.age_years,
                  labeled ? "labeled" : "unlabeled");
    dataset.subjects.push_back(std::move(entry));
  }
  RETURN_IF_ERROR(base::WriteFileAtomically(out_dir / "phantoms.csv", metadata));
  RETURN_IF_ERROR(
      base::WriteFileAtomically(dataset.manifest, PhantomManifestYaml(options, dataset.subjects)));
  return dataset;
}

}  // namespace fedjoint::common::data
