#include "site_agent/training/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log/logging.h"

namespace fedjoint::site_agent::training {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

ProgressReporter::ProgressReporter(std::string label, int64_t start_step, int64_t total_steps,
                                   bool enabled, double log_interval_s)
    : label_(std::move(label)),
      start_step_(start_step),
      total_steps_(total_steps),
      enabled_(enabled),
      tty_(enabled && isatty(fileno(stderr)) != 0),
      log_interval_s_(log_interval_s),
      started_(std::chrono::steady_clock::now()),
      last_draw_(started_) {}

ProgressReporter::~ProgressReporter() { Finish(); }

double ProgressReporter::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

double ProgressReporter::EtaSeconds(int64_t done) const {
  const int64_t ran = done - start_step_;
  if (ran <= 0) return std::nan("");
  return ElapsedSeconds() / static_cast<double>(ran) * static_cast<double>(total_steps_ - done);
}

void ProgressReporter::Update(int64_t done, double loss, double dice) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  const bool last = done >= total_steps_;
  if (tty_ ? (since < 0.2 && !last) : (since < log_interval_s_ && !last)) return;
  last_draw_ = now;
  Draw(done, loss, dice);
}

void ProgressReporter::Draw(int64_t done, double loss, double dice) {
  const double fraction =
      total_steps_ > 0 ? static_cast<double>(done) / static_cast<double>(total_steps_) : 1.0;
  const double elapsed = ElapsedSeconds();
  const double rate = elapsed > 0 ? static_cast<double>(done - start_step_) / elapsed : 0.0;
  const std::string dice_text = std::isfinite(dice) ? fmt::format("{:.3f}", dice) : "-";
  const std::string stats =
      fmt::format("{}/{} loss {:.4f} val dice {} {:.2f} step/s ETA {}", done, total_steps_, loss,
                  dice_text, rate, FormatDuration(EtaSeconds(done)));
  if (tty_) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) bar += '>';
    bar.resize(kWidth, ' ');
    std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %s", label_.c_str(), bar.c_str(),
                 100.0 * fraction, stats.c_str());
    std::fflush(stderr);
    line_open_ = true;
  } else {
    common::log::Get("train")->info("{} {:.0f}% {}", label_, 100.0 * fraction, stats);
  }
}

void ProgressReporter::ClearLine() {
  if (tty_ && line_open_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    line_open_ = false;
  }
}

void ProgressReporter::Note(const std::string& line) {
  ClearLine();
  common::log::Get("train")->info("{}", line);
}

void ProgressReporter::Finish() {
  if (tty_ && line_open_) {
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
    line_open_ = false;
  }
}

MetricsLog::MetricsLog(std::filesystem::path path) : path_(std::move(path)) {}

absl::Status MetricsLog::Append(const nlohmann::json& record) {
  if (path_.empty()) return absl::OkStatus();
  std::ofstream out(path_, std::ios::app);
  out << record.dump() << '\n';
  out.flush();
  if (!out) {
    return absl::InternalError(fmt::format("{}: cannot append a metrics line", path_.string()));
  }
  return absl::OkStatus();
}

}  // namespace fedjoint::site_agent::training
