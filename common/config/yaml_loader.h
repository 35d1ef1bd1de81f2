// A generic YAML -> protobuf loader driven by the message descriptors and the field rules in
// proto/fedjoint/v1/options.proto. It never stops at the first mistake: every problem in a file
// (unknown or duplicate keys, wrong types, missing required keys, values out of range, cross-field
// rules) is collected in one pass and reported together, one line per problem:
//
//   configs/site.yaml: 2 problems
//   configs/site.yaml:4:3: training.batch_sise: unknown key (did you mean 'batch_size'?)
//   configs/site.yaml:9:12: threads: expected an integer, got 'many'
//
// Line and column are 1-based; problems are listed in document order.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/status/status.h"

namespace fedjoint::common::config {

// A problem found by a check that runs on the parsed message (a rule the schema cannot express).
// `path` is the key path as written in YAML ("job.phases[1].name"); the loader turns it into the
// file position of that key, or of its closest enclosing key when the value came from a default.
struct ConfigIssue {
  std::string path;
  std::string message;
  // Other keys the rule read. The issue is dropped when any of them (or `path`) already has a
  // problem of its own, so a bad value is reported once, not again as a confusing consequence.
  std::vector<std::string> depends_on = {};

  bool operator==(const ConfigIssue&) const = default;
};

using CrossFieldCheck = std::function<std::vector<ConfigIssue>(const google::protobuf::Message&)>;

// Parses `yaml_text` into `out` (which is cleared first). `display_name` names the text in error
// messages (usually the file path as the user wrote it); relative values of `path: true` fields
// are resolved against `base_dir` (left relative when `base_dir` is empty). `check`, when set,
// runs on the parsed message and its issues join the same list.
// Errors: InvalidArgument listing every problem (first line "NAME: N problems"). On error the
// contents of `out` are unspecified.
absl::Status ParseYamlInto(std::string_view yaml_text, std::string_view display_name,
                           const std::filesystem::path& base_dir, google::protobuf::Message* out,
                           const CrossFieldCheck& check = nullptr);

// Reads `file` and parses it as above, with paths resolved against the file's directory.
// Errors: NotFound when the file does not exist, InvalidArgument for any problem in it.
absl::Status LoadYamlInto(const std::filesystem::path& file, google::protobuf::Message* out,
                          const CrossFieldCheck& check = nullptr);

}  // namespace fedjoint::common::config
