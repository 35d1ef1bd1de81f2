#include "common/config/yaml_writer.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/config/field_rules.h"

namespace fedjoint::common::config {

namespace {

namespace gpb = google::protobuf;
using Cpp = gpb::FieldDescriptor::CppType;

// Shortest text that reads back as the same value (fmt's default), in YAML's spelling of
// infinities.
template <typename Float>
std::string FormatFloat(Float value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  return fmt::format("{}", value);
}

void EmitMessage(YAML::Emitter& out, const gpb::Message& message);

// One value of `field`: the field itself (index < 0) or element `index` of a repeated field.
void EmitValue(YAML::Emitter& out, const gpb::Message& message, const gpb::FieldDescriptor* field,
               int index) {
  const gpb::Reflection* reflection = message.GetReflection();
  bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_INT32:
      out << (repeated ? reflection->GetRepeatedInt32(message, field, index)
                       : reflection->GetInt32(message, field));
      return;
    case Cpp::CPPTYPE_INT64:
      out << (repeated ? reflection->GetRepeatedInt64(message, field, index)
                       : reflection->GetInt64(message, field));
      return;
    case Cpp::CPPTYPE_UINT32:
      out << (repeated ? reflection->GetRepeatedUInt32(message, field, index)
                       : reflection->GetUInt32(message, field));
      return;
    case Cpp::CPPTYPE_UINT64:
      out << (repeated ? reflection->GetRepeatedUInt64(message, field, index)
                       : reflection->GetUInt64(message, field));
      return;
    case Cpp::CPPTYPE_FLOAT:
      out << FormatFloat(repeated ? reflection->GetRepeatedFloat(message, field, index)
                                  : reflection->GetFloat(message, field));
      return;
    case Cpp::CPPTYPE_DOUBLE:
      out << FormatFloat(repeated ? reflection->GetRepeatedDouble(message, field, index)
                                  : reflection->GetDouble(message, field));
      return;
    case Cpp::CPPTYPE_BOOL:
      out << (repeated ? reflection->GetRepeatedBool(message, field, index)
                       : reflection->GetBool(message, field));
      return;
    case Cpp::CPPTYPE_ENUM: {
      const gpb::EnumValueDescriptor* value =
          repeated ? reflection->GetRepeatedEnum(message, field, index)
                   : reflection->GetEnum(message, field);
      out << YamlEnumName(value);
      return;
    }
    case Cpp::CPPTYPE_STRING: {
      std::string value = repeated ? reflection->GetRepeatedString(message, field, index)
                                   : reflection->GetString(message, field);
      // Quote what a reader could take for something else (numbers, booleans, null, empty).
      out << YAML::DoubleQuoted << value;
      return;
    }
    case Cpp::CPPTYPE_MESSAGE:
      EmitMessage(out, repeated ? reflection->GetRepeatedMessage(message, field, index)
                                : reflection->GetMessage(message, field));
      return;
  }
}

std::string MapKeyText(const gpb::Message& entry) {
  const gpb::FieldDescriptor* key = entry.GetDescriptor()->map_key();
  const gpb::Reflection* reflection = entry.GetReflection();
  switch (key->cpp_type()) {
    case Cpp::CPPTYPE_INT32:
      return std::to_string(reflection->GetInt32(entry, key));
    case Cpp::CPPTYPE_INT64:
      return std::to_string(reflection->GetInt64(entry, key));
    case Cpp::CPPTYPE_UINT32:
      return std::to_string(reflection->GetUInt32(entry, key));
    case Cpp::CPPTYPE_UINT64:
      return std::to_string(reflection->GetUInt64(entry, key));
    case Cpp::CPPTYPE_BOOL:
      return reflection->GetBool(entry, key) ? "true" : "false";
    default:
      return reflection->GetString(entry, key);
  }
}

void EmitMessage(YAML::Emitter& out, const gpb::Message& message) {
  const gpb::Descriptor* type = message.GetDescriptor();
  const gpb::Reflection* reflection = message.GetReflection();
  out << YAML::BeginMap;
  for (int i = 0; i < type->field_count(); ++i) {
    const gpb::FieldDescriptor* field = type->field(i);
    if (!field->is_repeated() && field->has_presence() && !reflection->HasField(message, field)) {
      continue;
    }
    out << YAML::Key << field->name() << YAML::Value;
    if (field->is_map()) {
      std::vector<std::pair<std::string, const gpb::Message*>> entries;
      for (int j = 0; j < reflection->FieldSize(message, field); ++j) {
        const gpb::Message& entry = reflection->GetRepeatedMessage(message, field, j);
        entries.emplace_back(MapKeyText(entry), &entry);
      }
      std::sort(entries.begin(), entries.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      if (entries.empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (const auto& [key, entry] : entries) {
        out << YAML::Key << key << YAML::Value;
        EmitValue(out, *entry, entry->GetDescriptor()->map_value(), -1);
      }
      out << YAML::EndMap;
    } else if (field->is_repeated()) {
      int size = reflection->FieldSize(message, field);
      // Lists of scalars read best on one line; lists of maps as blocks.
      if (size == 0 || field->cpp_type() != Cpp::CPPTYPE_MESSAGE) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (int j = 0; j < size; ++j) EmitValue(out, message, field, j);
      out << YAML::EndSeq;
    } else {
      EmitValue(out, message, field, -1);
    }
  }
  out << YAML::EndMap;
}

}  // namespace

std::string ToYaml(const gpb::Message& message) {
  YAML::Emitter out;
  EmitMessage(out, message);
  return std::string(out.c_str()) + "\n";
}

}  // namespace fedjoint::common::config
