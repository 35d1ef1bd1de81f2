#include "common/config/schema_check.h"

#include <memory>
#include <set>

#include <fmt/format.h>
#include <google/protobuf/message.h>

#include "common/config/field_rules.h"
#include "common/config/yaml_walker.h"

namespace fedjoint::common::config {

namespace {

namespace gpb = google::protobuf;
using Cpp = gpb::FieldDescriptor::CppType;

bool IsNumeric(Cpp type) {
  return type == Cpp::CPPTYPE_INT32 || type == Cpp::CPPTYPE_INT64 || type == Cpp::CPPTYPE_UINT32 ||
         type == Cpp::CPPTYPE_UINT64 || type == Cpp::CPPTYPE_FLOAT || type == Cpp::CPPTYPE_DOUBLE;
}

// The type the value rules (min, one_of, path, ...) apply to: the map's value for maps.
const gpb::FieldDescriptor* ValueField(const gpb::FieldDescriptor* field) {
  return field->is_map() ? field->message_type()->map_value() : field;
}

void CheckField(const gpb::FieldDescriptor* field, std::vector<std::string>* problems) {
  const v1::FieldRules& rules = RulesOf(field);
  Cpp type = ValueField(field)->cpp_type();
  auto report = [&](std::string_view what) {
    problems->push_back(fmt::format("{}: {}", field->full_name(), what));
  };
  if (rules.required() && rules.has_default_yaml()) {
    report("both required and default_yaml are set; a required key never uses its default");
  }
  if ((rules.has_min() || rules.has_max() || rules.has_gt()) && !IsNumeric(type)) {
    report("min/max/gt apply to numeric fields only");
  }
  if (rules.has_min() && rules.has_max() && rules.min() > rules.max()) report("min > max");
  if (!rules.one_of().empty() && type != Cpp::CPPTYPE_STRING && type != Cpp::CPPTYPE_ENUM &&
      !IsNumeric(type)) {
    report("one_of applies to string, enum and numeric fields only");
  }
  if (rules.path() && type != Cpp::CPPTYPE_STRING) report("path applies to string fields only");
  if (rules.not_empty() && !field->is_repeated() && type != Cpp::CPPTYPE_STRING) {
    report("not_empty applies to strings, repeated fields and maps only");
  }
  if (rules.has_default_yaml()) {
    // Parse the default into a scratch message exactly as the loader would for an absent key.
    const gpb::Message* prototype =
        gpb::MessageFactory::generated_factory()->GetPrototype(field->containing_type());
    std::unique_ptr<gpb::Message> scratch(prototype->New());
    internal::YamlWalker walker({});
    walker.ApplyDefault(scratch.get(), field, field->name(), YAML::Mark());
    for (const internal::Problem& problem : walker.problems()) {
      report(problem.path == field->name() ? problem.message
                                           : fmt::format("{}: {}", problem.path, problem.message));
    }
  }
}

void CheckMessage(const gpb::Descriptor* type, std::set<const gpb::Descriptor*>* visited,
                  std::vector<std::string>* problems) {
  if (!visited->insert(type).second) return;
  for (int i = 0; i < type->field_count(); ++i) {
    const gpb::FieldDescriptor* field = type->field(i);
    CheckField(field, problems);
    const gpb::FieldDescriptor* value = ValueField(field);
    if (value->cpp_type() == Cpp::CPPTYPE_MESSAGE) {
      CheckMessage(value->message_type(), visited, problems);
    }
  }
}

}  // namespace

std::vector<std::string> CheckSchema(const gpb::Descriptor* root) {
  std::vector<std::string> problems;
  std::set<const gpb::Descriptor*> visited;
  CheckMessage(root, &visited, &problems);
  return problems;
}

}  // namespace fedjoint::common::config
