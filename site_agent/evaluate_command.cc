#include "site_agent/evaluate_command.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "common/base/atomic_file.h"
#include "common/base/status_macros.h"
#include "common/config/config.h"
#include "common/data/check_data.h"
#include "common/data/manifest.h"
#include "common/data/preprocess.h"
#include "common/data/volume_io.h"
#include "common/log/logging.h"
#include "common/metrics/metric_table.h"
#include "common/metrics/segmentation_metrics.h"
#include "site_agent/inference/segmenter.h"
#include "site_agent/inference/weights.h"

namespace fedjoint::site_agent {
namespace {

namespace fs = std::filesystem;
namespace data = common::data;
namespace metrics = common::metrics;

struct EvaluateOptions {
  std::string model;
  std::string manifest;
  std::string out;
  std::string config;
  bool save_predictions = false;
  int threads = 0;
  int64_t batch_size = 16;
};

std::string Cell(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return "inf";
  return fmt::format("{:.4f}", value);
}

// The per-subject rows under the summary, as Markdown.
std::string SubjectTable(const metrics::MetricTable& table) {
  std::string out =
      "| subject | structure | Dice | HD95 (mm) | ASSD (mm) |\n|---|---|---|---|---|\n";
  for (const metrics::MetricRow& row : table.rows()) {
    out += fmt::format("| {} | {} | {} | {} | {} |\n", row.subject, row.structure, Cell(row.dice),
                       Cell(row.hd95), Cell(row.assd));
  }
  return out;
}

absl::Status RunEvaluate(const EvaluateOptions& cli) {
  const auto& log = common::log::Get("evaluate");
  std::optional<v1::ModelConfig> model_config;
  if (!cli.config.empty()) {
    ASSIGN_OR_RETURN(v1::SiteConfig site, common::config::LoadConfig<v1::SiteConfig>(cli.config));
    if (!site.has_model()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: has no `model` section to describe the network", cli.config));
    }
    model_config = site.model();
  }
  inference::SegmenterOptions segmenter_options;
  segmenter_options.batch_size = cli.batch_size;
  segmenter_options.threads =
      cli.threads > 0 ? cli.threads : static_cast<int>(std::thread::hardware_concurrency());
  ASSIGN_OR_RETURN(std::unique_ptr<inference::Segmenter> segmenter,
                   inference::Segmenter::Load(cli.model, segmenter_options, model_config));
  ASSIGN_OR_RETURN(fs::path model_path, inference::ResolveModelPath(cli.model));
  ASSIGN_OR_RETURN(data::Manifest manifest, data::LoadManifest(cli.manifest));
  const fs::path out =
      cli.out.empty() ? model_path.parent_path() / "evaluation" : fs::path(cli.out);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        fmt::format("{}: cannot create the output folder: {}", out.string(), ec.message()));
  }
  if (cli.save_predictions) fs::create_directories(out / "predictions", ec);

  const std::vector<std::string> joints = segmenter->Joints();
  metrics::MetricTable table;
  int64_t evaluated = 0, skipped = 0;
  for (const data::ManifestSubject& subject : manifest.subjects) {
    const std::string who =
        fmt::format("subject '{}' ({}:{})", subject.id, manifest.file.string(), subject.line);
    if (!subject.label) {
      ++skipped;
      log->info("{}: no label, skipped", who);
      continue;
    }
    if (std::find(joints.begin(), joints.end(), subject.joint) == joints.end()) {
      ++skipped;
      log->warn("{}: joint '{}' is not segmented by the model, skipped", who, subject.joint);
      continue;
    }
    const auto started = std::chrono::steady_clock::now();
    data::ReadOptions read;
    read.series_uid = subject.series_uid;
    ASSIGN_OR_RETURN(data::Volume image, data::ReadVolume(subject.image, read));
    ASSIGN_OR_RETURN(data::Volume truth, data::ReadLabelVolume(*subject.label));
    if (auto diffs = data::CompareGeometry(image.geometry, truth.geometry); !diffs.empty()) {
      return absl::InvalidArgumentError(fmt::format("{}: label {} is not on the image's grid: {}",
                                                    who, subject.label->string(), diffs.front()));
    }
    truth.geometry = image.geometry;  // equal within tolerance; make them identical

    // Truth label values -> the model's structure numbering, by structure name.
    ASSIGN_OR_RETURN(std::vector<std::string> structures, segmenter->Structures(subject.joint));
    auto label_map = manifest.labels.find(subject.joint);
    if (label_map == manifest.labels.end()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: the manifest has no `labels` entry for joint '{}'", who, subject.joint));
    }
    data::LabelMapping mapping;
    std::vector<metrics::Structure> evaluated_structures;
    for (const auto& [value, name] : label_map->second) {
      auto it = std::find(structures.begin(), structures.end(), name);
      if (it == structures.end()) {
        return absl::InvalidArgumentError(fmt::format(
            "{}: structure '{}' (label {}) is not one the model segments", who, name, value));
      }
      const int64_t index = (it - structures.begin()) + 1;
      mapping.value_to_index[value] = index;
      evaluated_structures.push_back({index, fmt::format("{}/{}", subject.joint, name)});
    }
    std::sort(evaluated_structures.begin(), evaluated_structures.end(),
              [](const auto& a, const auto& b) { return a.label < b.label; });
    ASSIGN_OR_RETURN(truth.voxels, data::RemapLabels(truth.voxels, mapping));

    ASSIGN_OR_RETURN(inference::Segmentation segmentation,
                     segmenter->Segment(image, subject.joint));
    ASSIGN_OR_RETURN(
        std::vector<metrics::StructureMetrics> values,
        metrics::ComputeSegmentationMetrics(segmentation.labels, truth, evaluated_structures));
    RETURN_IF_ERROR(table.AddSubject(subject.id, values));
    if (cli.save_predictions) {
      RETURN_IF_ERROR(data::WriteVolume(segmentation.labels,
                                        out / "predictions" / (subject.id + "_pred.nii.gz")));
    }
    ++evaluated;
    std::string dice;
    for (const auto& v : values) dice += fmt::format(" {} {:.3f}", v.structure, v.dice);
    log->info("{} ({} slices, {:.1f} s):{}", subject.id, segmentation.slices,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
              dice);
  }
  if (evaluated == 0) {
    return absl::InvalidArgumentError(
        fmt::format("{}: no labelled subject of the model's joints to evaluate ({} skipped)",
                    manifest.file.string(), skipped));
  }
  const std::string summary = table.ToMarkdown();
  RETURN_IF_ERROR(common::base::WriteFileAtomically(out / "metrics.csv", table.ToCsv()));
  RETURN_IF_ERROR(common::base::WriteFileAtomically(
      out / "metrics.md",
      fmt::format("# Evaluation of {}\n\nManifest: {} ({} subject(s) evaluated)\n\n{}\n## Per "
                  "subject\n\n{}",
                  model_path.string(), manifest.file.string(), evaluated, summary,
                  SubjectTable(table))));
  std::cout << summary;
  std::cout << fmt::format("\n{} subject(s) evaluated; {} and {} written\n", evaluated,
                           (out / "metrics.csv").string(), (out / "metrics.md").string());
  return absl::OkStatus();
}

}  // namespace

void AddEvaluateCommand(common::cli::Program& program) {
  auto options = std::make_shared<EvaluateOptions>();
  CLI::App* sub = program.app().add_subcommand(
      "evaluate", "Segment every labelled scan of a manifest and report Dice, HD95 and ASSD");
  sub->add_option("--model", options->model,
                  "Model file, training run folder (model.safetensors) or site state folder "
                  "(final/model.safetensors)")
      ->required();
  sub->add_option("--manifest", options->manifest, "Manifest of the scans to evaluate on")
      ->required();
  sub->add_option("--out", options->out,
                  "Folder for metrics.csv and metrics.md (default: MODEL_FOLDER/evaluation)");
  sub->add_option("--config", options->config,
                  "Site config whose `model` section describes the network (for model files "
                  "without config metadata)");
  sub->add_flag("--save-predictions", options->save_predictions,
                "Also write each predicted label volume (OUT/predictions/<subject>_pred.nii.gz)");
  sub->add_option("--threads", options->threads, "Inference threads (0 = every core)")
      ->capture_default_str();
  sub->add_option("--batch-size", options->batch_size, "Slices per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  program.SetAction(sub, [options] { return RunEvaluate(*options); });
}

}  // namespace fedjoint::site_agent
