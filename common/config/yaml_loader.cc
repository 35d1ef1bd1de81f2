#include "common/config/yaml_loader.h"

#include <algorithm>
#include <system_error>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/base/atomic_file.h"
#include "common/config/yaml_walker.h"

namespace fedjoint::common::config {

namespace {

// Config files are small; anything bigger is a mistake (a wrong file passed as --config).
constexpr std::size_t kMaxConfigBytes = 1u << 20;

std::string FormatProblem(std::string_view display_name, const internal::Problem& problem) {
  std::string location =
      problem.mark.is_null()
          ? std::string(display_name)
          : fmt::format("{}:{}:{}", display_name, problem.mark.line + 1, problem.mark.column + 1);
  if (problem.path.empty()) return fmt::format("{}: {}", location, problem.message);
  return fmt::format("{}: {}: {}", location, problem.path, problem.message);
}

absl::Status Report(std::string_view display_name, std::vector<internal::Problem> problems) {
  if (problems.empty()) return absl::OkStatus();
  // Document order; problems without a position go last. Stable, so problems at one position keep
  // the order they were found in.
  std::stable_sort(
      problems.begin(), problems.end(), [](const internal::Problem& a, const internal::Problem& b) {
        if (a.mark.is_null() != b.mark.is_null()) return b.mark.is_null();
        return std::pair(a.mark.line, a.mark.column) < std::pair(b.mark.line, b.mark.column);
      });
  std::string message = fmt::format("{}: {} problem{}", display_name, problems.size(),
                                    problems.size() == 1 ? "" : "s");
  for (const internal::Problem& problem : problems) {
    message += "\n";
    message += FormatProblem(display_name, problem);
  }
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::Status ParseYamlInto(std::string_view yaml_text, std::string_view display_name,
                           const std::filesystem::path& base_dir, google::protobuf::Message* out,
                           const CrossFieldCheck& check) {
  out->Clear();
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(yaml_text));
  } catch (const YAML::ParserException& e) {
    return Report(display_name, {{e.mark, "", "YAML syntax error: " + e.msg}});
  } catch (const YAML::Exception& e) {
    return Report(display_name, {{e.mark, "", std::string("YAML error: ") + e.what()}});
  }

  internal::YamlWalker walker(base_dir);
  try {
    if (documents.size() > 1) {
      walker.AddProblem(documents[1].Mark(), "",
                        fmt::format("expected one YAML document, found {}", documents.size()));
    }
    walker.ParseRoot(documents.empty() ? YAML::Node() : documents.front(), out);
    if (check) {
      // Judge every issue against the problems of the walk only, not against each other.
      std::vector<ConfigIssue> kept;
      for (ConfigIssue& issue : check(*out)) {
        bool follows_from_other_problem =
            walker.HasProblemNear(issue.path) ||
            std::any_of(issue.depends_on.begin(), issue.depends_on.end(),
                        [&](const std::string& path) { return walker.HasProblemNear(path); });
        if (!follows_from_other_problem) kept.push_back(std::move(issue));
      }
      for (ConfigIssue& issue : kept) {
        YAML::Mark mark = walker.FindMark(issue.path);
        walker.AddProblem(mark, std::move(issue.path), std::move(issue.message));
      }
    }
  } catch (const YAML::Exception& e) {
    // The walker only reads nodes it checked; reaching here is a bug, still reported with the file.
    return absl::InternalError(
        fmt::format("{}: unexpected YAML error: {}", display_name, e.what()));
  }
  return Report(display_name, walker.problems());
}

absl::Status LoadYamlInto(const std::filesystem::path& file, google::protobuf::Message* out,
                          const CrossFieldCheck& check) {
  absl::StatusOr<std::string> text = base::ReadSmallFile(file, kMaxConfigBytes);
  if (!text.ok()) return text.status();
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(file, error);
  std::filesystem::path base_dir = (error ? file : absolute).parent_path();
  return ParseYamlInto(*text, file.string(), base_dir, out, check);
}

}  // namespace fedjoint::common::config
