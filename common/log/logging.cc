#include "common/log/logging.h"

#include <chrono>
#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::log {
namespace {

// One JSON object per line: {"ts":..., "level":..., "logger":..., "msg":...}. nlohmann does the
// escaping, so a message with quotes or control characters still yields valid JSON.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto micros = duration_cast<microseconds>(msg.time.time_since_epoch()).count();
    nlohmann::json line = {
        {"ts", static_cast<double>(micros) / 1e6},
        {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                              spdlog::level::to_string_view(msg.level).size())},
        {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
    };
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.push_back('\n');
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

struct State {
  std::mutex mutex;
  spdlog::sink_ptr sink;
  spdlog::level::level_enum level = spdlog::level::info;
  bool command_line_level = false;
  bool command_line_format = false;
};

State& GlobalState() {
  static State* state = [] {
    auto* s = new State;
    s->sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s->sink->set_formatter(
        std::make_unique<spdlog::pattern_formatter>("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v"));
    return s;
  }();
  return *state;
}

}  // namespace

absl::Status ParseLevel(std::string_view text, spdlog::level::level_enum* level) {
  static constexpr std::string_view kNames[] = {"trace", "debug",    "info", "warn",
                                                "error", "critical", "off"};
  for (int i = 0; i < 7; ++i) {
    if (text == kNames[i]) {
      *level = static_cast<spdlog::level::level_enum>(i);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", std::string(text),
                   "' (expected trace, debug, info, warn, error, critical or off)"));
}

absl::Status ParseFormat(std::string_view text, Format* format) {
  if (text == "human")
    *format = Format::kHuman;
  else if (text == "json")
    *format = Format::kJson;
  else
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log format '", std::string(text), "' (expected human or json)"));
  return absl::OkStatus();
}

namespace {

void SetLevelLocked(State& state, spdlog::level::level_enum level) {
  state.level = level;
  spdlog::apply_all(
      [level](const std::shared_ptr<spdlog::logger>& logger) { logger->set_level(level); });
}

void SetFormatLocked(State& state, Format format) {
  if (format == Format::kJson) {
    state.sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    state.sink->set_formatter(
        std::make_unique<spdlog::pattern_formatter>("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v"));
  }
}

}  // namespace

absl::Status Setup(const Options& options) {
  spdlog::level::level_enum level;
  if (auto s = ParseLevel(options.level, &level); !s.ok()) return s;
  State& state = GlobalState();
  std::lock_guard lock(state.mutex);
  SetLevelLocked(state, level);
  SetFormatLocked(state, options.format);
  return absl::OkStatus();
}

void SetCommandLineOverrides(bool level, bool format) {
  State& state = GlobalState();
  std::lock_guard lock(state.mutex);
  state.command_line_level = level;
  state.command_line_format = format;
}

absl::Status ApplyConfigSettings(std::string_view level_text, std::string_view format_text) {
  spdlog::level::level_enum level = spdlog::level::info;
  Format format = Format::kHuman;
  // Both are checked before either is applied.
  if (!level_text.empty()) {
    if (auto s = ParseLevel(level_text, &level); !s.ok()) return s;
  }
  if (!format_text.empty()) {
    if (auto s = ParseFormat(format_text, &format); !s.ok()) return s;
  }
  State& state = GlobalState();
  std::lock_guard lock(state.mutex);
  if (!level_text.empty() && !state.command_line_level) SetLevelLocked(state, level);
  if (!format_text.empty() && !state.command_line_format) SetFormatLocked(state, format);
  return absl::OkStatus();
}

std::shared_ptr<spdlog::logger> Get(const std::string& component) {
  if (auto existing = spdlog::get(component)) return existing;
  State& state = GlobalState();
  std::lock_guard lock(state.mutex);
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = std::make_shared<spdlog::logger>(component, state.sink);
  logger->set_level(state.level);
  logger->flush_on(spdlog::level::warn);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace fedjoint::common::log
