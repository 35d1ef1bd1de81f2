// Accumulates per-subject, per-structure metrics during an evaluation, then aggregates them
// (mean ± sd per structure) and renders CSV and Markdown; Reset() starts over. The MONAI metric
// life cycle: accumulate, aggregate, reset.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/metrics/segmentation_metrics.h"

namespace fedjoint::common::metrics {

struct MetricRow {
  std::string subject;
  std::string structure;
  double dice = 0;
  double hd95 = 0;  // mm; NaN/inf for empty structures (segmentation_metrics.h)
  double assd = 0;  // mm
};

// Mean and sample standard deviation (n − 1) over the finite values; NaN and ±inf are counted
// apart, never averaged. sd is NaN with fewer than two finite values; mean is NaN with none.
struct Statistic {
  double mean = 0;
  double sd = 0;
  int64_t finite = 0;
  int64_t nan = 0;
  int64_t inf = 0;
};

struct StructureSummary {
  std::string structure;
  int64_t subjects = 0;
  Statistic dice, hd95, assd;
};

Statistic Summarize(std::span<const double> values);

class MetricTable {
 public:
  // Fails (InvalidArgument, naming both) if the (subject, structure) pair is already recorded:
  // a subject evaluated twice would silently count double.
  absl::Status Add(MetricRow row);
  // One row per structure of `metrics` (StructureMetrics::structure names it).
  absl::Status AddSubject(std::string_view subject, std::span<const StructureMetrics> metrics);

  const std::vector<MetricRow>& rows() const { return rows_; }
  // One summary per structure, in the order structures were first added.
  std::vector<StructureSummary> Aggregate() const;
  // "subject,structure,dice,hd95_mm,assd_mm" then one line per row, values round-trip exact,
  // "nan"/"inf" for undefined distances; fields quoted (RFC 4180) when they need it.
  std::string ToCsv() const;
  // | structure | subjects | Dice | HD95 (mm) | ASSD (mm) | with "mean ± sd" cells; a cell notes
  // how many values were left out as nan/inf, e.g. "2.41 ± 0.80 (1 inf)".
  std::string ToMarkdown() const;
  void Reset() { rows_.clear(); }

 private:
  std::vector<MetricRow> rows_;
};

}  // namespace fedjoint::common::metrics
