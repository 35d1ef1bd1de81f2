// Consistency check of the configuration schema itself (a programming error, not a user error):
// every `default_yaml` parses and satisfies its field's own rules, and every rule fits its field's
// type. Run by a unit test over the top-level configs so a bad schema edit fails CI, not a user.
#pragma once

#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>

namespace fedjoint::common::config {

// Checks `root` and every message type reachable from it. Each problem names the field
// ("fedjoint.v1.ModelConfig.input_size: ...").
std::vector<std::string> CheckSchema(const google::protobuf::Descriptor* root);

}  // namespace fedjoint::common::config
