// What a person watching training sees: a progress bar on stderr when it is a terminal
// (step, loss, Dice, speed, ETA, redrawn in place at most 5 times a second), plain log lines every
// `log_interval_s` otherwise (CI logs, systemd journals); and the machine-readable record, one JSON
// object per line (metrics.jsonl), appended as training goes.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"

namespace fedjoint::site_agent::training {

// "1h02m", "3m05s", "42s".
std::string FormatDuration(double seconds);

class ProgressReporter {
 public:
  // Steps [start_step, total_steps) are to run in this process (earlier ones were resumed).
  ProgressReporter(std::string label, int64_t start_step, int64_t total_steps, bool enabled,
                   double log_interval_s = 30.0);
  ~ProgressReporter();

  // After step `done` (1-based count of finished steps); loss = running mean since the last
  // epoch, dice = last validation mean (NaN: none yet).
  void Update(int64_t done, double loss, double dice);
  // A line to keep (epoch summaries): clears the bar, logs, redraws later.
  void Note(const std::string& line);
  // Ends the bar line.
  void Finish();

  double ElapsedSeconds() const;
  // Remaining time at the current speed (NaN before the first step).
  double EtaSeconds(int64_t done) const;

 private:
  void Draw(int64_t done, double loss, double dice);
  void ClearLine();

  std::string label_;
  int64_t start_step_;
  int64_t total_steps_;
  bool enabled_;
  bool tty_;
  double log_interval_s_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_draw_;
  bool line_open_ = false;
};

// metrics.jsonl in a run folder; does nothing when the path is empty.
class MetricsLog {
 public:
  explicit MetricsLog(std::filesystem::path path);
  absl::Status Append(const nlohmann::json& record);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace fedjoint::site_agent::training
