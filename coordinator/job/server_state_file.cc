#include "coordinator/job/server_state_file.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"

namespace fedjoint::coordinator {

namespace tensors = common::tensors;

absl::Status WriteServerState(const std::filesystem::path& path, std::span<const std::string> names,
                              const common::aggregation::ServerState& state) {
  std::vector<tensors::TensorRef> refs;
  auto add = [&](const std::string& key, const std::vector<float>& values) {
    refs.push_back({key,
                    tensors::DType::kF32,
                    {static_cast<int64_t>(values.size())},
                    std::as_bytes(std::span<const float>(values))});
  };
  for (size_t i = 0; i < names.size() && i < state.first.size(); ++i) {
    add(names[i] + ".m", state.first[i]);
    if (i < state.second.size()) add(names[i] + ".v", state.second[i]);
  }
  return tensors::WriteSafetensors(path, refs, {{"fedjoint.kind", "server optimizer state"}});
}

absl::StatusOr<common::aggregation::ServerState> ReadServerState(const std::filesystem::path& path,
                                                                 std::span<const std::string> names,
                                                                 std::span<const size_t> sizes,
                                                                 bool with_second) {
  auto file = tensors::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  common::aggregation::ServerState state;
  auto read = [&](const std::string& key, size_t size) -> absl::StatusOr<std::vector<float>> {
    auto values = file->DataAs<float>(key);
    if (!values.ok()) {
      return absl::DataLossError(absl::StrCat(path.string(), ": ", values.status().message()));
    }
    if (values->size() != size) {
      return absl::DataLossError(absl::StrCat(path.string(), ": '", key, "' has ", values->size(),
                                              " values, the model ", size));
    }
    return std::vector<float>(values->begin(), values->end());
  };
  for (size_t i = 0; i < names.size(); ++i) {
    auto first = read(names[i] + ".m", sizes[i]);
    if (!first.ok()) return first.status();
    state.first.push_back(std::move(*first));
    if (with_second) {
      auto second = read(names[i] + ".v", sizes[i]);
      if (!second.ok()) return second.status();
      state.second.push_back(std::move(*second));
    }
  }
  return state;
}

}  // namespace fedjoint::coordinator
