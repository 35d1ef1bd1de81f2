// Internal to common/config: walks a YAML tree against a message descriptor, fills the message by
// reflection and records every problem with its position instead of stopping at the first.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include "fedjoint/v1/options.pb.h"

namespace fedjoint::common::config::internal {

struct Problem {
  YAML::Mark mark;  // 0-based, as yaml-cpp gives it; null when the position is unknown
  std::string path;
  std::string message;
};

class YamlWalker {
 public:
  // Relative `path: true` values are resolved against `base_dir` (kept as-is when it is empty).
  explicit YamlWalker(std::filesystem::path base_dir);

  // Parses the document root (a map; null or absent counts as an empty map) into `message`.
  void ParseRoot(const YAML::Node& root, google::protobuf::Message* message);

  // Applies the schema default of `field` (which must have one) as if its key were absent.
  // Used by the schema check: a default that does not parse is reported as a problem.
  void ApplyDefault(google::protobuf::Message* message,
                    const google::protobuf::FieldDescriptor* field, const std::string& path,
                    const YAML::Mark& mark);

  void AddProblem(const YAML::Mark& mark, std::string path, std::string message);

  // The position of the value at `path`, or of its closest enclosing key that was written.
  YAML::Mark FindMark(std::string path) const;
  // True when a problem was reported at `path`, inside it, or at an enclosing key.
  bool HasProblemNear(std::string_view path) const;

  const std::vector<Problem>& problems() const { return problems_; }

 private:
  void ParseMessage(const YAML::Node& node, google::protobuf::Message* message,
                    const std::string& path, const YAML::Mark& mark);
  void ParseField(const YAML::Node& node, google::protobuf::Message* message,
                  const google::protobuf::FieldDescriptor* field, const std::string& path,
                  const YAML::Mark& key_mark);
  void ParseMapField(const YAML::Node& node, google::protobuf::Message* message,
                     const google::protobuf::FieldDescriptor* field, const std::string& path,
                     const YAML::Mark& mark);
  // One value of `field` (the field itself, an element of a repeated field, or a map entry's
  // value); `add` appends to a repeated field.
  void ParseValue(const YAML::Node& node, google::protobuf::Message* message,
                  const google::protobuf::FieldDescriptor* field, const v1::FieldRules& rules,
                  const std::string& path, const YAML::Mark& fallback_mark, bool add);
  void ApplyAbsent(google::protobuf::Message* message,
                   const google::protobuf::FieldDescriptor* field, const std::string& path,
                   const YAML::Mark& mark);

  std::filesystem::path base_dir_;
  std::vector<Problem> problems_;
  // Position of every value written in the file, by key path (for cross-field issues).
  std::map<std::string, YAML::Mark, std::less<>> marks_;
  // Message types being parsed, outermost first: an absent field of one of these types is not
  // filled with defaults, so recursive schemas terminate.
  std::vector<const google::protobuf::Descriptor*> stack_;
  // While a schema default is being parsed, problems point at the key it stands in for.
  int default_depth_ = 0;
  YAML::Mark default_mark_;
  std::string default_text_;
};

// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string JoinPath(std::string_view parent, std::string_view key);
// How a value is shown in a message: 'text' (shortened), "a map", "a sequence", "an empty value".
std::string Describe(const YAML::Node& node);
std::string Quote(std::string_view text);

}  // namespace fedjoint::common::config::internal
