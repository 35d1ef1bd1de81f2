#include "common/metrics/metric_table.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace fedjoint::common::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string CsvField(std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
  std::string quoted = "\"";
  for (char c : field) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string CsvNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{}", value);
}

// Markdown cells must not break the table.
std::string MarkdownText(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return out;
}

std::string Cell(const Statistic& s, int decimals) {
  std::string cell;
  if (s.finite == 0) {
    cell = "n/a";
  } else if (s.finite == 1) {
    cell = fmt::format("{:.{}f}", s.mean, decimals);
  } else {
    cell = fmt::format("{:.{}f} ± {:.{}f}", s.mean, decimals, s.sd, decimals);
  }
  if (s.nan > 0 && s.inf > 0) return fmt::format("{} ({} nan, {} inf)", cell, s.nan, s.inf);
  if (s.nan > 0) return fmt::format("{} ({} nan)", cell, s.nan);
  if (s.inf > 0) return fmt::format("{} ({} inf)", cell, s.inf);
  return cell;
}

}  // namespace

Statistic Summarize(std::span<const double> values) {
  Statistic s;
  double sum = 0;
  for (double v : values) {
    if (std::isnan(v)) {
      ++s.nan;
    } else if (std::isinf(v)) {
      ++s.inf;
    } else {
      ++s.finite;
      sum += v;
    }
  }
  s.mean = s.finite > 0 ? sum / static_cast<double>(s.finite) : kNaN;
  if (s.finite < 2) {
    s.sd = kNaN;
    return s;
  }
  double squares = 0;
  for (double v : values) {
    if (std::isfinite(v)) squares += (v - s.mean) * (v - s.mean);
  }
  s.sd = std::sqrt(squares / static_cast<double>(s.finite - 1));
  return s;
}

absl::Status MetricTable::Add(MetricRow row) {
  for (const MetricRow& existing : rows_) {
    if (existing.subject == row.subject && existing.structure == row.structure) {
      return absl::InvalidArgumentError(
          fmt::format("metric table: subject '{}' structure '{}' is already recorded", row.subject,
                      row.structure));
    }
  }
  rows_.push_back(std::move(row));
  return absl::OkStatus();
}

absl::Status MetricTable::AddSubject(std::string_view subject,
                                     std::span<const StructureMetrics> metrics) {
  for (const StructureMetrics& m : metrics) {
    absl::Status status = Add({std::string(subject), m.structure, m.dice, m.hd95, m.assd});
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

std::vector<StructureSummary> MetricTable::Aggregate() const {
  std::vector<std::string> order;
  for (const MetricRow& row : rows_) {
    bool seen = false;
    for (const std::string& name : order) seen = seen || name == row.structure;
    if (!seen) order.push_back(row.structure);
  }
  std::vector<StructureSummary> summaries;
  for (const std::string& name : order) {
    std::vector<double> dice, hd95, assd;
    for (const MetricRow& row : rows_) {
      if (row.structure != name) continue;
      dice.push_back(row.dice);
      hd95.push_back(row.hd95);
      assd.push_back(row.assd);
    }
    summaries.push_back({name, static_cast<int64_t>(dice.size()), Summarize(dice), Summarize(hd95),
                         Summarize(assd)});
  }
  return summaries;
}

std::string MetricTable::ToCsv() const {
  std::string csv = "subject,structure,dice,hd95_mm,assd_mm\n";
  for (const MetricRow& row : rows_) {
    csv += fmt::format("{},{},{},{},{}\n", CsvField(row.subject), CsvField(row.structure),
                       CsvNumber(row.dice), CsvNumber(row.hd95), CsvNumber(row.assd));
  }
  return csv;
}

std::string MetricTable::ToMarkdown() const {
  std::string md =
      "| structure | subjects | Dice | HD95 (mm) | ASSD (mm) |\n"
      "| --- | ---: | --- | --- | --- |\n";
  for (const StructureSummary& s : Aggregate()) {
    md += fmt::format("| {} | {} | {} | {} | {} |\n", MarkdownText(s.structure), s.subjects,
                      Cell(s.dice, 3), Cell(s.hd95, 2), Cell(s.assd, 2));
  }
  return md;
}

}  // namespace fedjoint::common::metrics
