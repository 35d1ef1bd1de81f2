#include "common/config/validate.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "common/aggregation/scope_policy.h"

namespace fedjoint::common::config {

namespace {

// Returns the problem with a "host:port" address, or an empty string. Port 0 is allowed: the
// operating system picks a free port (used by tests).
std::string CheckHostPort(std::string_view address) {
  std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return fmt::format("expected host:port (e.g. 0.0.0.0:50051), got '{}'", address);
  }
  std::string_view host = address.substr(0, colon);
  std::string_view port = address.substr(colon + 1);
  if (host.front() == '[' && host.back() != ']') {
    return fmt::format("unbalanced '[' in IPv6 address '{}'", address);
  }
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(),
                            [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  if (!digits || std::stoi(std::string(port)) > 65535) {
    return fmt::format("port must be a number from 0 to 65535, got '{}'", port);
  }
  return "";
}

// Joint names become parameter names ("heads.<joint>...") and domain scopes, which are a wire
// format: keep them to snake_case identifiers.
bool IsSnakeIdentifier(std::string_view name) {
  if (name.empty() || !std::islower(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
}

// The rule of common/security/site_name.h (the name is the CN of the site's certificate), repeated
// here so config checks do not pull in OpenSSL.
std::string CheckSiteName(std::string_view name) {
  if (name.empty()) return "";  // reported by not_empty
  bool valid = name.size() <= 63 &&
               (std::islower(static_cast<unsigned char>(name.front())) ||
                std::isdigit(static_cast<unsigned char>(name.front()))) &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return std::islower(static_cast<unsigned char>(c)) ||
                        std::isdigit(static_cast<unsigned char>(c)) || c == '-';
               });
  if (!valid) {
    return fmt::format(
        "must be a lower-case DNS label ([a-z0-9][a-z0-9-]{{0,62}}, the certificate's common "
        "name), got '{}'",
        name);
  }
  if (name.rfind("fedjoint-", 0) == 0) {
    return fmt::format(
        "the prefix 'fedjoint-' is reserved for the consortium's own certificates, "
        "got '{}'",
        name);
  }
  return "";
}

void CheckModel(const v1::ModelConfig& model, const std::string& path,
                std::vector<ConfigIssue>* issues) {
  std::map<std::string, int> joints;
  for (int j = 0; j < model.joints_size(); ++j) {
    const v1::JointConfig& joint = model.joints(j);
    std::string joint_path = fmt::format("{}.joints[{}]", path, j);
    if (joint.name().empty()) continue;  // reported by not_empty
    if (!IsSnakeIdentifier(joint.name())) {
      issues->push_back(
          {joint_path + ".name",
           fmt::format("must match [a-z][a-z0-9_]* (it becomes part of parameter names), got '{}'",
                       joint.name())});
    } else if (joint.name() == "shared") {
      issues->push_back({joint_path + ".name",
                         "'shared' is reserved (the normalization of the shared model variant)"});
    }
    if (auto [first, inserted] = joints.emplace(joint.name(), j); !inserted) {
      std::string first_path = fmt::format("{}.joints[{}].name", path, first->second);
      issues->push_back(
          {joint_path + ".name",
           fmt::format("duplicate joint name '{}' (also {})", joint.name(), first_path),
           {first_path}});
    }
    std::map<std::string, int> structures;
    for (int s = 0; s < joint.structures_size(); ++s) {
      const std::string& structure = joint.structures(s);
      if (structure.empty()) continue;  // reported by not_empty
      if (auto [first, inserted] = structures.emplace(structure, s); !inserted) {
        std::string first_path = fmt::format("{}.structures[{}]", joint_path, first->second);
        issues->push_back({fmt::format("{}.structures[{}]", joint_path, s),
                           fmt::format("duplicate structure '{}' in joint '{}' (also {})",
                                       structure, joint.name(), first_path),
                           {first_path}});
      }
    }
  }
}

void CheckScopes(const google::protobuf::RepeatedPtrField<v1::ScopeRule>& scopes,
                 const std::string& path, std::vector<ConfigIssue>* issues) {
  std::map<std::string, int> patterns;
  int catch_all = -1;
  for (int i = 0; i < scopes.size(); ++i) {
    const std::string& pattern = scopes[i].pattern();
    std::string pattern_path = fmt::format("{}[{}].pattern", path, i);
    if (pattern.empty()) continue;  // reported by not_empty
    // The one grammar the coordinator and the sites match with (common/aggregation/scope_policy).
    if (absl::Status grammar = aggregation::CheckPattern(pattern); !grammar.ok()) {
      issues->push_back({pattern_path, std::string(grammar.message())});
    }
    if (catch_all >= 0) {
      issues->push_back(
          {pattern_path, fmt::format("can never match: {}[{}] ('*') matches every parameter first",
                                     path, catch_all)});
    } else if (auto [first, inserted] = patterns.emplace(pattern, i); !inserted) {
      issues->push_back(
          {pattern_path, fmt::format("repeats {}[{}].pattern '{}', so this rule can never match",
                                     path, first->second, pattern)});
    }
    if (pattern == "*" && catch_all < 0) catch_all = i;
  }
  if (catch_all < 0) {
    issues->push_back(
        {path, "must end with a catch-all rule (pattern: '*') so every parameter has a scope"});
  }
}

void CheckTrainingBudget(const v1::LocalTrainingConfig& local, const std::string& path,
                         std::vector<ConfigIssue>* issues) {
  if (local.epochs() == 0 && local.steps() == 0) {
    issues->push_back({path + ".epochs",
                       "epochs and steps are both 0: set a local training budget",
                       {path + ".steps"}});
  }
}

}  // namespace

std::vector<ConfigIssue> ValidateCoordinatorConfig(const v1::CoordinatorConfig& config) {
  std::vector<ConfigIssue> issues;
  if (!config.listen().empty()) {
    if (std::string problem = CheckHostPort(config.listen()); !problem.empty()) {
      issues.push_back({"listen", problem});
    }
  }
  if (config.has_limits() && config.limits().chunk_bytes() >= config.limits().max_message_bytes()) {
    issues.push_back(
        {"limits.chunk_bytes",
         fmt::format("must be less than limits.max_message_bytes ({}), got {}: a chunk and its "
                     "framing must fit in one message",
                     config.limits().max_message_bytes(), config.limits().chunk_bytes()),
         {"limits.max_message_bytes"}});
  }
  if (!config.has_job()) return issues;
  const v1::JobConfig& job = config.job();
  if (job.min_updates() > job.min_sites()) {
    issues.push_back({"job.min_updates",
                      fmt::format("must be <= job.min_sites ({}), got {}: a round could never "
                                  "collect enough updates",
                                  job.min_sites(), job.min_updates()),
                      {"job.min_sites"}});
  }
  std::map<std::string, int> phase_names;
  for (int i = 0; i < job.phases_size(); ++i) {
    const v1::PhaseConfig& phase = job.phases(i);
    std::string path = fmt::format("job.phases[{}]", i);
    if (!phase.name().empty()) {
      if (auto [first, inserted] = phase_names.emplace(phase.name(), i); !inserted) {
        std::string first_path = fmt::format("job.phases[{}].name", first->second);
        issues.push_back(
            {path + ".name",
             fmt::format("duplicate phase name '{}' (also {})", phase.name(), first_path),
             {first_path}});
      }
    }
    if (phase.has_model()) CheckModel(phase.model(), path + ".model", &issues);
    CheckScopes(phase.scopes(), path + ".scopes", &issues);
    if (phase.has_local()) CheckTrainingBudget(phase.local(), path + ".local", &issues);
  }
  return issues;
}

std::vector<ConfigIssue> ValidateSiteConfig(const v1::SiteConfig& config) {
  std::vector<ConfigIssue> issues;
  if (std::string problem = CheckSiteName(config.name()); !problem.empty()) {
    issues.push_back({"name", problem});
  }
  if (!config.coordinator().empty()) {
    if (std::string problem = CheckHostPort(config.coordinator()); !problem.empty()) {
      issues.push_back({"coordinator", problem});
    }
    if (!config.has_tls()) {
      issues.push_back(
          {"coordinator", "needs a tls section: the coordinator only accepts mutual TLS", {"tls"}});
    }
  }
  if (config.has_model()) CheckModel(config.model(), "model", &issues);
  if (config.has_training()) CheckTrainingBudget(config.training(), "training", &issues);
  return issues;
}

}  // namespace fedjoint::common::config
