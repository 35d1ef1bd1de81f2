// Access to the (fedjoint.v1.rules) field options, and naming helpers shared by the YAML reader,
// the writer and the schema check.
#pragma once

#include <string>
#include <string_view>

#include <google/protobuf/descriptor.h>

#include "fedjoint/v1/options.pb.h"

namespace fedjoint::common::config {

// The rules attached to `field` (an empty FieldRules when it has none).
const v1::FieldRules& RulesOf(const google::protobuf::FieldDescriptor* field);

// True when some field of `type` is required. Such a message is an optional section: when its key
// is absent it stays unset instead of being filled with defaults.
bool HasRequiredFields(const google::protobuf::Descriptor* type);

// The name an enum value is written with in YAML: lower case, without the enum's prefix
// (COLOR_GREEN_BLUE of enum Color -> "green_blue").
std::string YamlEnumName(const google::protobuf::EnumValueDescriptor* value);

// Finds the enum value written as `text`: the YAML name, or the full proto name.
const google::protobuf::EnumValueDescriptor* FindEnumValue(
    const google::protobuf::EnumDescriptor* type, std::string_view text);

// Edit distance (with swaps of neighbouring characters), for "did you mean" suggestions.
std::size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace fedjoint::common::config
