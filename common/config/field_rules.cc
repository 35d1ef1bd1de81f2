#include "common/config/field_rules.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace fedjoint::common::config {

namespace gpb = google::protobuf;

const v1::FieldRules& RulesOf(const gpb::FieldDescriptor* field) {
  return field->options().GetExtension(v1::rules);
}

bool HasRequiredFields(const gpb::Descriptor* type) {
  for (int i = 0; i < type->field_count(); ++i) {
    if (RulesOf(type->field(i)).required()) return true;
  }
  return false;
}

namespace {

// "GreenBlue" -> "GREEN_BLUE_", the prefix protobuf's style guide puts on enum value names.
std::string EnumPrefix(std::string_view type_name) {
  std::string prefix;
  for (std::size_t i = 0; i < type_name.size(); ++i) {
    char c = type_name[i];
    if (i > 0 && std::isupper(static_cast<unsigned char>(c)) &&
        !std::isupper(static_cast<unsigned char>(type_name[i - 1]))) {
      prefix += '_';
    }
    prefix += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return prefix + "_";
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string YamlEnumName(const gpb::EnumValueDescriptor* value) {
  std::string_view name = value->name();
  std::string prefix = EnumPrefix(value->type()->name());
  if (name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix) {
    name.remove_prefix(prefix.size());
  }
  return Lower(name);
}

const gpb::EnumValueDescriptor* FindEnumValue(const gpb::EnumDescriptor* type,
                                              std::string_view text) {
  for (int i = 0; i < type->value_count(); ++i) {
    const gpb::EnumValueDescriptor* value = type->value(i);
    if (text == YamlEnumName(value) || text == value->name()) return value;
  }
  return nullptr;
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and swaps of neighbours each
  // cost 1, so the common typo "modle" is one edit away from "model".
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace fedjoint::common::config
