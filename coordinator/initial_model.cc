#include "coordinator/initial_model.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/model/model_factory.h"

namespace fedjoint::coordinator {
namespace {

constexpr uint64_t kInitSeed = 0;

void Append(const std::string& name, const at::Tensor& tensor, std::vector<OwnedTensor>* out) {
  OwnedTensor t;
  t.name = name;
  t.shape = tensor.sizes().vec();
  at::Tensor values = tensor.detach().to(at::kFloat).contiguous();
  t.values.assign(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
  out->push_back(std::move(t));
}

absl::StatusOr<std::vector<OwnedTensor>> Collect(const torch::nn::Module& module) {
  std::vector<OwnedTensor> out;
  for (const auto& p : module.named_parameters()) Append(p.key(), p.value(), &out);
  for (const auto& b : module.named_buffers()) {
    // Integer buffers (BatchNorm's num_batches_tracked) are local bookkeeping, never averaged:
    // they stay at each site whatever the scope rules say (see SplitByScope on the site side).
    if (!at::isFloatingType(b.value().scalar_type())) continue;
    Append(b.key(), b.value(), &out);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<OwnedTensor>> BuildInitialModel(const fedjoint::v1::PhaseConfig& phase) {
  const auto& config = phase.model();
  if (config.architecture() == "shape_autoencoder") {
    auto model = common::model::BuildShapeAutoEncoder(config, kInitSeed);
    if (!model.ok()) return model.status();
    return Collect(**model);
  }
  auto model = common::model::BuildUNet(config, kInitSeed);
  if (!model.ok()) return model.status();
  return Collect(**model);
}

}  // namespace fedjoint::coordinator
