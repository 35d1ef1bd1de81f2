#include "site_agent/segment_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/base/status.h"
#include "common/base/status_macros.h"
#include "common/config/config.h"
#include "common/config/model_config_json.h"
#include "common/data/manifest.h"
#include "common/data/volume_io.h"
#include "common/log/logging.h"
#include "common/mesh/mesh_io.h"
#include "common/mesh/surface_mesh.h"
#include "common/model/model_factory.h"
#include "common/security/model_signing.h"
#include "site_agent/inference/largest_component.h"
#include "site_agent/inference/segmenter.h"
#include "site_agent/inference/site_norm.h"
#include "site_agent/inference/verified_model.h"

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;
namespace data = common::data;
namespace mesh = common::mesh;

struct SegmentOptions {
  std::string model;
  std::string joint;
  std::string input;
  std::string output;
  std::string surfaces;
  std::string ca;
  std::string config;
  std::string series_uid;
  std::vector<std::string> recalibrate;
  bool allow_unsigned = false;
  bool largest_component = false;
  int threads = 0;
  int64_t batch_size = 16;
};

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checked before any work: a typo in the output name should not cost a whole segmentation.
absl::Status CheckOutputName(const fs::path& output) {
  const std::string name = output.filename().string();
  for (std::string_view ext : {".nii.gz", ".nii", ".nrrd", ".mha"}) {
    if (EndsWith(name, ext)) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(fmt::format(
      "--output {}: unsupported extension; use .nii.gz, .nii, .nrrd or .mha", output.string()));
}

// "segmenting: 96/160 slices (60%)": redrawn in place on a terminal; a few log lines otherwise
// (CI logs and journals would fill up with carriage returns).
class ProgressLine {
 public:
  ProgressLine() : tty_(isatty(fileno(stderr)) != 0) {}
  void Update(int64_t done, int64_t total) {
    const int percent = total > 0 ? static_cast<int>(100 * done / total) : 100;
    if (tty_) {
      std::fprintf(stderr, "\rsegmenting: %lld/%lld slices (%d%%)", static_cast<long long>(done),
                   static_cast<long long>(total), percent);
      if (done == total) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (percent >= next_percent_ || done == total) {
      common::log::Get("segment")->info("segmenting: {}/{} slices ({}%)", done, total, percent);
      next_percent_ = (percent / 25 + 1) * 25;
    }
  }

 private:
  bool tty_;
  int next_percent_ = 25;
};

absl::Status WriteSurfaces(const data::Volume& labels, const std::vector<std::string>& structures,
                           const fs::path& dir) {
  const auto& log = common::log::Get("segment");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        fmt::format("--surfaces {}: cannot create the folder: {}", dir.string(), ec.message()));
  }
  const at::Tensor voxels = labels.voxels.contiguous();
  const std::span<const uint8_t> bytes(voxels.data_ptr<uint8_t>(),
                                       static_cast<size_t>(voxels.numel()));
  for (size_t s = 0; s < structures.size(); ++s) {
    ASSIGN_OR_RETURN(mesh::TriangleMesh surface,
                     mesh::MeshLabel(bytes, labels.geometry, static_cast<uint8_t>(s + 1)));
    if (surface.empty()) {
      log->warn("{}: not found in the scan, no surface written", structures[s]);
      continue;
    }
    const fs::path stl = dir / (structures[s] + ".stl");
    const fs::path obj = dir / (structures[s] + ".obj");
    RETURN_IF_ERROR(mesh::WriteBinaryStl(surface, stl, structures[s]));
    RETURN_IF_ERROR(mesh::WriteObj(surface, obj, structures[s]));
    log->info("{}: {} triangles, {:.1f} mL enclosed -> {} and {}", structures[s],
              surface.triangles.size(), mesh::SignedVolume(surface) / 1000.0, stl.string(),
              obj.filename().string());
  }
  return absl::OkStatus();
}

// The site's unlabelled scans for --recalibrate-norm: scan files and DICOM folders, and manifests
// (.yaml/.yml: the images of their subjects of `joint`).
absl::StatusOr<std::vector<data::Volume>> ReadRecalibrationScans(
    const std::vector<std::string>& paths, const std::string& joint) {
  std::vector<data::Volume> scans;
  for (const std::string& path : paths) {
    if (EndsWith(path, ".yaml") || EndsWith(path, ".yml")) {
      ASSIGN_OR_RETURN(data::Manifest manifest, data::LoadManifest(path));
      size_t used = 0;
      for (const data::ManifestSubject& subject : manifest.subjects) {
        if (subject.joint != joint) continue;
        data::ReadOptions read;
        read.series_uid = subject.series_uid;
        ASSIGN_OR_RETURN(data::Volume scan, data::ReadVolume(subject.image, read));
        scans.push_back(std::move(scan));
        ++used;
      }
      if (used == 0) {
        return absl::InvalidArgumentError(fmt::format(
            "--recalibrate-norm {}: the manifest has no subject of joint '{}'", path, joint));
      }
    } else {
      ASSIGN_OR_RETURN(data::Volume scan, data::ReadVolume(path));
      scans.push_back(std::move(scan));
    }
  }
  return scans;
}

absl::Status RunSegment(const SegmentOptions& cli) {
  const auto& log = common::log::Get("segment");
  const auto started = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(CheckOutputName(cli.output));
  std::error_code ec;
  if (!fs::exists(cli.input, ec)) {
    return absl::NotFoundError(fmt::format("--input {}: no such file or folder", cli.input));
  }

  // Trust anchor and (for model files without config metadata) the network's description.
  std::string ca = cli.ca;
  std::optional<v1::ModelConfig> site_model;
  if (!cli.config.empty()) {
    ASSIGN_OR_RETURN(v1::SiteConfig site, common::config::LoadConfig<v1::SiteConfig>(cli.config));
    if (ca.empty() && site.has_tls()) ca = site.tls().ca_cert();
    if (site.has_model()) site_model = site.model();
  }
  std::optional<common::security::SignatureVerifier> verifier;
  if (!ca.empty()) {
    ASSIGN_OR_RETURN(verifier, common::security::SignatureVerifier::Load(ca));
  } else if (!cli.allow_unsigned) {
    return absl::InvalidArgumentError(
        "no consortium CA to check the model's signature: give --ca CA_CERT (the consortium's "
        "ca.crt) or --config SITE_CONFIG (its tls.ca_cert); --allow-unsigned only for a model "
        "this site trained itself");
  }
  inference::ModelTrust trust;
  trust.verifier = verifier ? &*verifier : nullptr;
  trust.allow_unsigned = cli.allow_unsigned;
  ASSIGN_OR_RETURN(inference::VerifiedModel model, inference::LoadVerifiedModel(cli.model, trust));
  if (!model.signed_by_consortium) {
    log->warn("model {}: signature not checked (--allow-unsigned)", model.file.path.string());
  }
  v1::ModelConfig config;
  if (model.file.has_config) {
    config = model.file.config;
  } else if (site_model) {
    config = *site_model;
  } else {
    return absl::FailedPreconditionError(fmt::format(
        "model {} does not say which network it is (no '{}' metadata): give --config with the "
        "site config whose `model` section describes it",
        model.file.path.string(), common::config::kModelConfigMetadataKey));
  }
  std::vector<std::string> joints;
  for (const auto& j : config.joints()) joints.push_back(j.name());
  if (std::find(joints.begin(), joints.end(), cli.joint) == joints.end()) {
    return absl::InvalidArgumentError(fmt::format("--joint {}: model {} segments [{}]", cli.joint,
                                                  model.file.path.string(),
                                                  fmt::join(joints, ", ")));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> missing_norm,
                   inference::MissingNormTensors(config, model.file.weights, cli.joint));
  common::tensors::TensorMap weights = model.file.weights;
  if (!missing_norm.empty()) {
    if (cli.recalibrate.empty()) {
      return absl::FailedPreconditionError(fmt::format(
          "model {} has no normalization tensors of this site for joint '{}' ({} missing, e.g. "
          "{}): normalization is site-scoped and this site never trained the model, so its "
          "statistics are unknown. Train locally or take part in the federation first, or "
          "re-estimate them from this site's scans with --recalibrate-norm (an approximation)",
          model.file.path.string(), cli.joint, missing_norm.size(), missing_norm.front()));
    }
    log->warn(
        "model {}: no normalization tensors of this site for '{}': running statistics are "
        "re-estimated from {} path(s), affine weights start at 1/0 (never trained here: an "
        "approximation)",
        model.file.path.string(), cli.joint, cli.recalibrate.size());
    ASSIGN_OR_RETURN(weights, inference::CompleteWithInitialNorm(config, weights));
  }

  ProgressLine progress;
  inference::SegmenterOptions options;
  options.batch_size = cli.batch_size;
  options.threads =
      cli.threads > 0 ? cli.threads : static_cast<int>(std::thread::hardware_concurrency());
  options.on_progress = [&progress](int64_t done, int64_t total) { progress.Update(done, total); };
  absl::StatusOr<std::unique_ptr<inference::Segmenter>> segmenter =
      inference::Segmenter::FromWeights(config, weights, options);
  if (!segmenter.ok()) {
    return common::base::Annotate(segmenter.status(),
                                  fmt::format("model {}", model.file.path.string()));
  }
  log->info("model {}", model.provenance);
  if (!cli.recalibrate.empty()) {
    ASSIGN_OR_RETURN(std::vector<data::Volume> scans,
                     ReadRecalibrationScans(cli.recalibrate, cli.joint));
    RETURN_IF_ERROR((*segmenter)->RecalibrateNormalization(scans, cli.joint));
    log->info("normalization statistics of '{}' re-estimated on {} scan(s)", cli.joint,
              scans.size());
  }

  data::ReadOptions read;
  read.series_uid = cli.series_uid;
  ASSIGN_OR_RETURN(data::Volume scan, data::ReadVolume(cli.input, read));
  const auto& size = scan.geometry.size;
  if (size[0] < 2 || size[1] < 2 || size[2] < 2) {
    return absl::InvalidArgumentError(fmt::format(
        "--input {}: {}x{}x{} voxels is a single slice or line; segment needs a 3D volume",
        cli.input, size[0], size[1], size[2]));
  }
  ASSIGN_OR_RETURN(inference::Segmentation result, (*segmenter)->Segment(scan, cli.joint));
  ASSIGN_OR_RETURN(std::vector<std::string> structures, (*segmenter)->Structures(cli.joint));
  if (cli.largest_component) {
    ASSIGN_OR_RETURN(std::vector<inference::ComponentCleanup> cleanup,
                     inference::KeepLargestComponents(result.labels));
    for (const auto& c : cleanup) {
      log->info("{}: kept the largest of {} component(s) ({} voxels), removed {} voxels",
                structures[static_cast<size_t>(c.label - 1)], c.components, c.voxels_kept,
                c.voxels_removed);
    }
  }
  const fs::path output(cli.output);
  if (output.has_parent_path()) fs::create_directories(output.parent_path(), ec);
  RETURN_IF_ERROR(data::WriteVolume(result.labels, output));
  if (!cli.surfaces.empty()) {
    RETURN_IF_ERROR(WriteSurfaces(result.labels, structures, cli.surfaces));
  }

  const double voxel_ml =
      scan.geometry.spacing[0] * scan.geometry.spacing[1] * scan.geometry.spacing[2] / 1000.0;
  const at::Tensor counts = torch::bincount(result.labels.voxels.flatten().to(torch::kLong), {},
                                            static_cast<int64_t>(structures.size()) + 1);
  std::cout << fmt::format(
      "{} ({}x{}x{}, {} slices along {}) -> {} in {:.1f} s\n", cli.input, size[0], size[1], size[2],
      result.slices, common::model::SliceAxisName(result.slice_axis), output.string(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  for (size_t s = 0; s < structures.size(); ++s) {
    const int64_t n = counts[static_cast<int64_t>(s + 1)].item<int64_t>();
    std::cout << fmt::format("  {:<12} label {}  {:>9} voxels  {:8.2f} mL\n", structures[s], s + 1,
                             n, n * voxel_ml);
  }
  return absl::OkStatus();
}

}  // namespace

void AddSegmentCommand(common::cli::Program& program) {
  auto options = std::make_shared<SegmentOptions>();
  CLI::App* sub = program.app().add_subcommand(
      "segment",
      "Segment one scan with a consortium model: a label volume on the scan's grid, optionally a "
      "surface mesh per bone");
  sub->add_option("--model", options->model,
                  "Model folder (pull-model's --out, STATE/final, or a train run folder) or a "
                  "model file")
      ->required();
  sub->add_option("--joint", options->joint, "Joint of the scan (one of the model's joints)")
      ->required();
  sub->add_option("--input", options->input,
                  "Scan: .nii/.nii.gz, .nrrd, .mha, or a folder holding a DICOM series")
      ->required();
  sub->add_option("--output", options->output,
                  "Label volume to write (.nii.gz, .nii, .nrrd or .mha), on the scan's grid")
      ->required();
  sub->add_option("--surfaces", options->surfaces,
                  "Folder for one closed surface per bone: <bone>.stl (binary) and <bone>.obj, in "
                  "physical LPS millimetres");
  sub->add_option("--ca", options->ca,
                  "Consortium CA certificate (ca.crt) that the model's signature must chain to");
  sub->add_option("--config", options->config,
                  "Site config: its tls.ca_cert is the CA (unless --ca), its `model` section "
                  "describes models without config metadata");
  sub->add_flag("--allow-unsigned", options->allow_unsigned,
                "Accept a model without a signature (only for models this site trained itself with "
                "`fedjoint-site train`); a signature that exists is still checked when a CA is "
                "given");
  sub->add_option("--recalibrate-norm", options->recalibrate,
                  "Re-estimate the joint's BatchNorm running statistics on this site's unlabelled "
                  "scans before segmenting (scan files, DICOM folders, or manifests: their "
                  "subjects of the joint). For a model whose normalization comes from another "
                  "site, or a site that never trained (then the affine weights are unknown and "
                  "start at 1/0). An approximation: on phantoms it lowered Dice (site_norm.h)")
      ->expected(1, -1);
  sub->add_flag("--largest-component", options->largest_component,
                "Keep only the largest 26-connected component of each bone");
  sub->add_option("--series-uid", options->series_uid,
                  "DICOM folders: the SeriesInstanceUID to read (default: the largest series)");
  sub->add_option("--threads", options->threads, "Inference threads (0 = every core)")
      ->capture_default_str();
  sub->add_option("--batch-size", options->batch_size, "Slices per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  program.SetAction(sub, [options] { return RunSegment(*options); });
}

}  // namespace fedjoint::site_agent
