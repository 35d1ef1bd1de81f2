// Writes a configuration message back as YAML, e.g. for `check-config --print`: every field in
// schema order, with defaults filled in, so the output shows exactly what the program will use.
// The output parses back (with ParseYamlInto) into an equal message.
#pragma once

#include <string>

#include <google/protobuf/message.h>

namespace fedjoint::common::config {

// Scalars are always written (proto3 has no "unset" for them); message fields only when set,
// so an absent optional section stays absent. Map entries are sorted by key.
std::string ToYaml(const google::protobuf::Message& message);

}  // namespace fedjoint::common::config
