#include "common/config/yaml_walker.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "common/config/field_rules.h"

namespace fedjoint::common::config::internal {

namespace gpb = google::protobuf;
using Cpp = gpb::FieldDescriptor::CppType;

std::string JoinPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string Quote(std::string_view text) {
  constexpr std::size_t kMaxShown = 60;
  std::string shown;
  for (char c : text.substr(0, kMaxShown)) {
    if (c == '\n') {
      shown += "\\n";
    } else if (c == '\t') {
      shown += "\\t";
    } else {
      shown += c;
    }
  }
  if (text.size() > kMaxShown) shown += "...";
  return "'" + shown + "'";
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "an empty value";
}

namespace {

// A null value (`key:` with nothing after it) has the position of whatever follows it, so
// problems about it point at its key instead.
YAML::Mark MarkOf(const YAML::Node& node, const YAML::Mark& fallback) {
  if (!node.IsDefined() || node.IsNull() || node.Mark().is_null()) return fallback;
  return node.Mark();
}

bool IsIdentifier(std::string_view text) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Map entries appear as `path.key`, or `path["key"]` when the key is not a plain word.
std::string MapEntryPath(std::string_view parent, std::string_view key) {
  if (IsIdentifier(key)) return JoinPath(parent, key);
  return fmt::format("{}[\"{}\"]", parent, key);
}

bool IsPathPrefix(std::string_view prefix, std::string_view path) {
  if (prefix.empty()) return true;
  if (path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '.' || path[prefix.size()] == '[';
}

// Integers as YAML 1.2's core schema writes them: [-+]?[0-9]+, 0x..., 0o...
struct ParsedInteger {
  bool negative = false;
  std::uint64_t magnitude = 0;
  bool overflow = false;  // more than 64 bits of magnitude
};

std::optional<ParsedInteger> ParseInteger(std::string_view text) {
  ParsedInteger out;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    out.negative = text[0] == '-';
    text.remove_prefix(1);
  }
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  } else if (text.size() > 2 && text[0] == '0' && text[1] == 'o') {
    base = 8;
    text.remove_prefix(2);
  }
  if (text.empty()) return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out.magnitude, base);
  if (end != text.data() + text.size()) return std::nullopt;
  if (error == std::errc::result_out_of_range) {
    out.overflow = true;
  } else if (error != std::errc()) {
    return std::nullopt;
  }
  return out;
}

struct IntRange {
  const char* name;
  std::int64_t min;  // as a signed value; 0 for unsigned types
  std::uint64_t max;
};

IntRange RangeOf(Cpp type) {
  switch (type) {
    case Cpp::CPPTYPE_INT32:
      return {"int32", std::numeric_limits<std::int32_t>::min(),
              static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())};
    case Cpp::CPPTYPE_UINT32:
      return {"uint32", 0, std::numeric_limits<std::uint32_t>::max()};
    case Cpp::CPPTYPE_UINT64:
      return {"uint64", 0, std::numeric_limits<std::uint64_t>::max()};
    default:
      return {"int64", std::numeric_limits<std::int64_t>::min(),
              static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())};
  }
}

// True when the value lies within the range of the field's integer type.
bool FitsRange(const ParsedInteger& value, const IntRange& range) {
  if (value.overflow) return false;
  if (!value.negative) return value.magnitude <= range.max;
  if (value.magnitude == 0) return true;
  // -magnitude >= range.min  <=>  magnitude <= -range.min (computed without overflow).
  std::uint64_t limit = static_cast<std::uint64_t>(-(range.min + 1)) + 1;
  return range.min < 0 && value.magnitude <= limit;
}

// Floats as YAML 1.2's core schema writes them, plus plain integers.
enum class FloatParse { kOk, kInvalid, kOutOfRange };

FloatParse ParseDouble(std::string_view text, double* out) {
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text == ".inf" || text == ".Inf" || text == ".INF") {
    *out = negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
    return FloatParse::kOk;
  }
  if (text == ".nan" || text == ".NaN" || text == ".NAN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return FloatParse::kOk;
  }
  bool has_digit = std::any_of(text.begin(), text.end(),
                               [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  bool allowed = std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' ||
           c == '+' || c == '-';
  });
  if (!has_digit || !allowed || text[0] == 'e' || text[0] == 'E') return FloatParse::kInvalid;
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size()) return FloatParse::kInvalid;
  if (error == std::errc::result_out_of_range) return FloatParse::kOutOfRange;
  if (error != std::errc()) return FloatParse::kInvalid;
  *out = negative ? -value : value;
  return FloatParse::kOk;
}

std::string FormatNumber(double value) { return fmt::format("{}", value); }

std::string JoinList(const gpb::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string EnumChoices(const gpb::EnumDescriptor* type) {
  std::string out;
  for (int i = 0; i < type->value_count(); ++i) {
    std::string name = YamlEnumName(type->value(i));
    if (type->value(i)->number() == 0 && name == "unspecified") continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string TypeNoun(const gpb::FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_INT32:
    case Cpp::CPPTYPE_INT64:
    case Cpp::CPPTYPE_UINT32:
    case Cpp::CPPTYPE_UINT64:
      return "an integer";
    case Cpp::CPPTYPE_FLOAT:
    case Cpp::CPPTYPE_DOUBLE:
      return "a number";
    case Cpp::CPPTYPE_BOOL:
      return "true or false";
    case Cpp::CPPTYPE_ENUM:
      return fmt::format("one of [{}]", EnumChoices(field->enum_type()));
    case Cpp::CPPTYPE_STRING:
      return "a string";
    case Cpp::CPPTYPE_MESSAGE:
      return "a map";
  }
  return "a value";
}

// The min/max/gt/one_of rules of a numeric value; returns the problem or an empty string.
std::string CheckNumber(double value, std::string_view text, const v1::FieldRules& rules) {
  if (rules.has_gt() && !(value > rules.gt())) {
    return fmt::format("must be > {}, got {}", FormatNumber(rules.gt()), text);
  }
  if (rules.has_min() && !(value >= rules.min())) {
    return fmt::format("must be >= {}, got {}", FormatNumber(rules.min()), text);
  }
  if (rules.has_max() && !(value <= rules.max())) {
    return fmt::format("must be <= {}, got {}", FormatNumber(rules.max()), text);
  }
  if (!rules.one_of().empty()) {
    bool found =
        std::any_of(rules.one_of().begin(), rules.one_of().end(), [&](const std::string& allowed) {
          double parsed = 0;
          return ParseDouble(allowed, &parsed) == FloatParse::kOk && parsed == value;
        });
    if (!found) return fmt::format("must be one of [{}], got {}", JoinList(rules.one_of()), text);
  }
  return "";
}

}  // namespace

YamlWalker::YamlWalker(std::filesystem::path base_dir) : base_dir_(std::move(base_dir)) {}

void YamlWalker::AddProblem(const YAML::Mark& mark, std::string path, std::string message) {
  if (default_depth_ > 0) {
    problems_.push_back(
        {default_mark_, std::move(path),
         fmt::format("invalid schema default {}: {}", Quote(default_text_), message)});
    return;
  }
  problems_.push_back({mark, std::move(path), std::move(message)});
}

YAML::Mark YamlWalker::FindMark(std::string path) const {
  while (true) {
    if (auto it = marks_.find(path); it != marks_.end()) return it->second;
    if (path.empty()) return YAML::Mark::null_mark();
    std::size_t cut = path.find_last_of(".[");
    path.resize(cut == std::string::npos ? 0 : cut);
  }
}

bool YamlWalker::HasProblemNear(std::string_view path) const {
  return std::any_of(problems_.begin(), problems_.end(), [&](const Problem& problem) {
    return IsPathPrefix(problem.path, path) || IsPathPrefix(path, problem.path);
  });
}

void YamlWalker::ParseRoot(const YAML::Node& root, gpb::Message* message) {
  YAML::Mark mark = root.IsDefined() && !root.IsNull() ? root.Mark() : YAML::Mark();
  marks_[""] = mark;
  ParseMessage(root, message, "", mark);
}

void YamlWalker::ParseMessage(const YAML::Node& node, gpb::Message* message,
                              const std::string& path, const YAML::Mark& mark) {
  const gpb::Descriptor* type = message->GetDescriptor();
  const gpb::Reflection* reflection = message->GetReflection();
  std::map<std::string, YAML::Mark> seen;
  std::map<const gpb::OneofDescriptor*, const gpb::FieldDescriptor*> oneofs_set;

  if (node.IsDefined() && !node.IsNull()) {
    if (!node.IsMap()) {
      AddProblem(MarkOf(node, mark), path, "expected a map, got " + Describe(node));
      return;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      YAML::Node key = it->first;  // a copy: `it->` yields a temporary proxy
      if (!key.IsScalar()) {
        AddProblem(MarkOf(key, mark), path, "expected a key name, got " + Describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      std::string child = JoinPath(path, name);
      if (auto [first, inserted] = seen.emplace(name, key.Mark()); !inserted) {
        AddProblem(key.Mark(), child,
                   fmt::format("duplicate key (first defined at line {})", first->second.line + 1));
        continue;
      }
      const gpb::FieldDescriptor* field = type->FindFieldByName(name);
      if (field == nullptr) {
        // Suggest the closest known key when it is a plausible typo.
        std::string normalized = name;
        for (char& c : normalized) {
          c = c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        const gpb::FieldDescriptor* best = nullptr;
        std::size_t best_distance = std::numeric_limits<std::size_t>::max();
        std::string known;
        for (int i = 0; i < type->field_count(); ++i) {
          const gpb::FieldDescriptor* candidate = type->field(i);
          std::size_t distance = EditDistance(normalized, candidate->name());
          if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
          }
          if (!known.empty()) known += ", ";
          known += candidate->name();
        }
        std::size_t tolerance =
            best == nullptr
                ? 0
                : std::max<std::size_t>(1, std::min(name.size(), best->name().size()) / 3);
        if (best != nullptr && best_distance <= tolerance) {
          AddProblem(key.Mark(), child,
                     fmt::format("unknown key (did you mean '{}'?)", best->name()));
        } else {
          AddProblem(key.Mark(), child, fmt::format("unknown key (valid keys: {})", known));
        }
        continue;
      }
      if (const gpb::OneofDescriptor* oneof = field->real_containing_oneof()) {
        auto [other, inserted] = oneofs_set.emplace(oneof, field);
        if (!inserted) {
          std::string members;
          for (int i = 0; i < oneof->field_count(); ++i) {
            if (!members.empty()) members += ", ";
            members += oneof->field(i)->name();
          }
          AddProblem(key.Mark(), child,
                     fmt::format("conflicts with '{}' (only one of {} may be set)",
                                 other->second->name(), members));
          continue;
        }
      }
      ParseField(it->second, message, field, child, key.Mark());
    }
  }

  stack_.push_back(type);
  for (int i = 0; i < type->field_count(); ++i) {
    const gpb::FieldDescriptor* field = type->field(i);
    if (seen.count(field->name()) != 0) continue;
    if (const gpb::OneofDescriptor* oneof = field->real_containing_oneof();
        oneof != nullptr && reflection->HasOneof(*message, oneof)) {
      continue;
    }
    ApplyAbsent(message, field, JoinPath(path, field->name()), mark);
  }
  stack_.pop_back();
}

void YamlWalker::ApplyAbsent(gpb::Message* message, const gpb::FieldDescriptor* field,
                             const std::string& path, const YAML::Mark& mark) {
  const v1::FieldRules& rules = RulesOf(field);
  if (rules.required()) {
    AddProblem(mark, path, "missing required key");
    return;
  }
  if (rules.has_default_yaml()) {
    ApplyDefault(message, field, path, mark);
    return;
  }
  // An absent section without required keys means "all defaults", like `section: {}`.
  if (field->cpp_type() == Cpp::CPPTYPE_MESSAGE && !field->is_repeated() &&
      field->real_containing_oneof() == nullptr && !HasRequiredFields(field->message_type()) &&
      std::find(stack_.begin(), stack_.end(), field->message_type()) == stack_.end()) {
    ParseMessage(YAML::Node(), message->GetReflection()->MutableMessage(message, field), path,
                 mark);
  }
}

void YamlWalker::ApplyDefault(gpb::Message* message, const gpb::FieldDescriptor* field,
                              const std::string& path, const YAML::Mark& mark) {
  const std::string& text = RulesOf(field).default_yaml();
  bool outermost = default_depth_ == 0;
  if (outermost) {
    default_mark_ = mark;
    default_text_ = text;
  }
  ++default_depth_;
  try {
    YAML::Node node = YAML::Load(text);
    ParseField(node, message, field, path, mark);
  } catch (const YAML::Exception& e) {
    AddProblem(mark, path, "YAML syntax error: " + e.msg);
  }
  --default_depth_;
}

void YamlWalker::ParseField(const YAML::Node& node, gpb::Message* message,
                            const gpb::FieldDescriptor* field, const std::string& path,
                            const YAML::Mark& key_mark) {
  YAML::Mark mark = MarkOf(node, key_mark);
  if (default_depth_ == 0) marks_[path] = mark;
  const v1::FieldRules& rules = RulesOf(field);
  if (field->is_map()) {
    ParseMapField(node, message, field, path, mark);
    return;
  }
  if (!field->is_repeated()) {
    ParseValue(node, message, field, rules, path, key_mark, /*add=*/false);
    return;
  }
  if (node.IsDefined() && !node.IsNull()) {
    if (!node.IsSequence()) {
      AddProblem(mark, path, "expected a sequence, got " + Describe(node));
      return;
    }
    std::size_t index = 0;
    for (auto it = node.begin(); it != node.end(); ++it, ++index) {
      std::string element_path = fmt::format("{}[{}]", path, index);
      if (default_depth_ == 0) marks_[element_path] = MarkOf(*it, mark);
      ParseValue(*it, message, field, rules, element_path, mark, /*add=*/true);
    }
  }
  if (rules.not_empty() && message->GetReflection()->FieldSize(*message, field) == 0) {
    AddProblem(mark, path, "must not be empty");
  }
}

void YamlWalker::ParseMapField(const YAML::Node& node, gpb::Message* message,
                               const gpb::FieldDescriptor* field, const std::string& path,
                               const YAML::Mark& mark) {
  const v1::FieldRules& rules = RulesOf(field);
  const gpb::Reflection* reflection = message->GetReflection();
  if (node.IsDefined() && !node.IsNull()) {
    if (!node.IsMap()) {
      AddProblem(mark, path, "expected a map, got " + Describe(node));
      return;
    }
    const gpb::FieldDescriptor* key_field = field->message_type()->map_key();
    const gpb::FieldDescriptor* value_field = field->message_type()->map_value();
    std::map<std::string, YAML::Mark> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      YAML::Node key = it->first;  // a copy: `it->` yields a temporary proxy
      if (!key.IsScalar()) {
        AddProblem(MarkOf(key, mark), path, "expected a key name, got " + Describe(key));
        continue;
      }
      std::string child = MapEntryPath(path, key.Scalar());
      if (auto [first, inserted] = seen.emplace(key.Scalar(), key.Mark()); !inserted) {
        AddProblem(key.Mark(), child,
                   fmt::format("duplicate key (first defined at line {})", first->second.line + 1));
        continue;
      }
      if (default_depth_ == 0) marks_[child] = MarkOf(it->second, key.Mark());
      gpb::Message* entry = reflection->AddMessage(message, field);
      ParseValue(key, entry, key_field, v1::FieldRules::default_instance(), child, key.Mark(),
                 /*add=*/false);
      ParseValue(it->second, entry, value_field, rules, child, key.Mark(), /*add=*/false);
    }
  }
  if (rules.not_empty() && reflection->FieldSize(*message, field) == 0) {
    AddProblem(mark, path, "must not be empty");
  }
}

void YamlWalker::ParseValue(const YAML::Node& node, gpb::Message* message,
                            const gpb::FieldDescriptor* field, const v1::FieldRules& rules,
                            const std::string& path, const YAML::Mark& fallback_mark, bool add) {
  const gpb::Reflection* reflection = message->GetReflection();
  YAML::Mark mark = MarkOf(node, fallback_mark);
  if (field->cpp_type() == Cpp::CPPTYPE_MESSAGE) {
    gpb::Message* sub =
        add ? reflection->AddMessage(message, field) : reflection->MutableMessage(message, field);
    ParseMessage(node, sub, path, mark);
    return;
  }
  if (!node.IsScalar()) {
    AddProblem(mark, path, fmt::format("expected {}, got {}", TypeNoun(field), Describe(node)));
    return;
  }
  const std::string& text = node.Scalar();
  auto fail = [&](std::string message_text) { AddProblem(mark, path, std::move(message_text)); };

  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_INT32:
    case Cpp::CPPTYPE_INT64:
    case Cpp::CPPTYPE_UINT32:
    case Cpp::CPPTYPE_UINT64: {
      std::optional<ParsedInteger> parsed = ParseInteger(text);
      if (!parsed) return fail(fmt::format("expected an integer, got {}", Quote(text)));
      IntRange range = RangeOf(field->cpp_type());
      if (!FitsRange(*parsed, range)) {
        return fail(fmt::format("integer {} is out of range for {} ({} to {})", text, range.name,
                                range.min, range.max));
      }
      double as_double = parsed->negative ? -static_cast<double>(parsed->magnitude)
                                          : static_cast<double>(parsed->magnitude);
      if (std::string problem = CheckNumber(as_double, text, rules); !problem.empty()) {
        return fail(problem);
      }
      // Two's complement: negating the magnitude gives the signed value for every in-range input.
      std::uint64_t bits = parsed->negative ? ~parsed->magnitude + 1 : parsed->magnitude;
      switch (field->cpp_type()) {
        case Cpp::CPPTYPE_INT32:
          add ? reflection->AddInt32(message, field, static_cast<std::int32_t>(bits))
              : reflection->SetInt32(message, field, static_cast<std::int32_t>(bits));
          break;
        case Cpp::CPPTYPE_INT64:
          add ? reflection->AddInt64(message, field, static_cast<std::int64_t>(bits))
              : reflection->SetInt64(message, field, static_cast<std::int64_t>(bits));
          break;
        case Cpp::CPPTYPE_UINT32:
          add ? reflection->AddUInt32(message, field, static_cast<std::uint32_t>(bits))
              : reflection->SetUInt32(message, field, static_cast<std::uint32_t>(bits));
          break;
        default:
          add ? reflection->AddUInt64(message, field, bits)
              : reflection->SetUInt64(message, field, bits);
          break;
      }
      return;
    }
    case Cpp::CPPTYPE_FLOAT:
    case Cpp::CPPTYPE_DOUBLE: {
      double value = 0;
      FloatParse result = ParseDouble(text, &value);
      bool is_float = field->cpp_type() == Cpp::CPPTYPE_FLOAT;
      if (result == FloatParse::kInvalid) {
        return fail(fmt::format("expected a number, got {}", Quote(text)));
      }
      if (result == FloatParse::kOutOfRange ||
          (is_float && std::isfinite(value) &&
           std::abs(value) > std::numeric_limits<float>::max())) {
        return fail(
            fmt::format("number {} is out of range for {}", text, is_float ? "float" : "double"));
      }
      if (std::isnan(value)) return fail("expected a number, got NaN");
      if (std::string problem = CheckNumber(value, text, rules); !problem.empty()) {
        return fail(problem);
      }
      if (is_float) {
        add ? reflection->AddFloat(message, field, static_cast<float>(value))
            : reflection->SetFloat(message, field, static_cast<float>(value));
      } else {
        add ? reflection->AddDouble(message, field, value)
            : reflection->SetDouble(message, field, value);
      }
      return;
    }
    case Cpp::CPPTYPE_BOOL: {
      bool value = false;
      if (text == "true" || text == "True" || text == "TRUE") {
        value = true;
      } else if (text != "false" && text != "False" && text != "FALSE") {
        return fail(fmt::format("expected true or false, got {}", Quote(text)));
      }
      add ? reflection->AddBool(message, field, value) : reflection->SetBool(message, field, value);
      return;
    }
    case Cpp::CPPTYPE_ENUM: {
      const gpb::EnumValueDescriptor* value = FindEnumValue(field->enum_type(), text);
      if (value == nullptr) {
        return fail(fmt::format("expected one of [{}], got {}", EnumChoices(field->enum_type()),
                                Quote(text)));
      }
      if (!rules.one_of().empty() && std::find(rules.one_of().begin(), rules.one_of().end(),
                                               YamlEnumName(value)) == rules.one_of().end()) {
        return fail(
            fmt::format("must be one of [{}], got {}", JoinList(rules.one_of()), Quote(text)));
      }
      add ? reflection->AddEnum(message, field, value) : reflection->SetEnum(message, field, value);
      return;
    }
    case Cpp::CPPTYPE_STRING: {
      if (rules.not_empty() && text.empty()) return fail("must not be empty");
      if (!rules.one_of().empty() &&
          std::find(rules.one_of().begin(), rules.one_of().end(), text) == rules.one_of().end()) {
        return fail(
            fmt::format("must be one of [{}], got {}", JoinList(rules.one_of()), Quote(text)));
      }
      std::string value = text;
      if (rules.path() && !value.empty() && !base_dir_.empty()) {
        std::filesystem::path as_path(value);
        if (as_path.is_relative()) value = (base_dir_ / as_path).lexically_normal().string();
      }
      add ? reflection->AddString(message, field, std::move(value))
          : reflection->SetString(message, field, std::move(value));
      return;
    }
    case Cpp::CPPTYPE_MESSAGE:
      break;  // handled above
  }
}

}  // namespace fedjoint::common::config::internal
