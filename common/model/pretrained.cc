#include "common/model/pretrained.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedjoint::common::model {
namespace {

constexpr std::string_view kNorms = ".norms.";

// "layer1.0.bn1.norms.knee.weight" -> "layer1.0.bn1.weight"; other names are unchanged.
std::string TorchvisionKey(const std::string& model_key) {
  std::size_t pos = model_key.find(kNorms);
  if (pos == std::string::npos) return model_key;
  std::size_t end = model_key.find('.', pos + kNorms.size());
  return model_key.substr(0, pos) + (end == std::string::npos ? "" : model_key.substr(end));
}

std::string Shape(c10::IntArrayRef sizes) {
  return absl::StrCat("[", absl::StrJoin(sizes, ", "), "]");
}

bool IsFirstConv(const std::string& key) { return key == "conv1.weight"; }

// The first conv accepts [O, 3, k, k] for any model in_channels (reduced over RGB on copy).
bool Compatible(const std::string& key, const at::Tensor& source, const at::Tensor& target) {
  if (source.is_floating_point() != target.is_floating_point()) return false;
  if (source.sizes() == target.sizes()) return true;
  return IsFirstConv(key) && source.dim() == 4 && target.dim() == 4 && source.size(1) == 3 &&
         source.size(0) == target.size(0) && source.size(2) == target.size(2) &&
         source.size(3) == target.size(3);
}

std::string Describe(const std::string& key, const at::Tensor& source, const at::Tensor& target) {
  std::string text = absl::StrCat(key, ": state dict ", Shape(source.sizes()), " vs model ",
                                  Shape(target.sizes()));
  if (source.is_floating_point() != target.is_floating_point()) {
    absl::StrAppend(&text, " (dtype ", std::string(c10::toString(source.scalar_type())), " vs ",
                    std::string(c10::toString(target.scalar_type())), ")");
  }
  return text;
}

at::Tensor Adapt(const std::string& key, const at::Tensor& source, const at::Tensor& target) {
  at::Tensor value = source.to(target.scalar_type());
  if (IsFirstConv(key) && value.size(1) != target.size(1)) {
    const int64_t channels = target.size(1);
    value = (value.sum(1, /*keepdim=*/true) / static_cast<double>(channels))
                .expand({-1, channels, -1, -1});
  }
  return value;
}

std::string List(const std::vector<std::string>& keys) {
  return absl::StrCat(keys.size(), keys.empty() ? "" : " (" + absl::StrJoin(keys, ", ") + ")");
}

}  // namespace

std::string LoadReport::ToString() const {
  return absl::StrCat("loaded ", loaded.size(), " keys (", tensors_written,
                      " model tensors written); missing ", List(missing), "; unexpected ",
                      List(unexpected), "; shape mismatch ", List(mismatched), "; ignored ",
                      List(ignored));
}

absl::StatusOr<LoadReport> LoadTorchvisionEncoder(
    ResNetEncoderImpl& encoder, const std::map<std::string, at::Tensor>& state_dict,
    LoadOptions options) {
  // torchvision key -> the model tensors it fills (one per domain for a norm), in model order.
  std::vector<std::string> keys;
  std::map<std::string, std::vector<at::Tensor>> targets;
  auto add = [&](const std::string& model_key, const at::Tensor& tensor) {
    std::string key = TorchvisionKey(model_key);
    auto [it, inserted] = targets.try_emplace(key);
    if (inserted) keys.push_back(key);
    it->second.push_back(tensor);
  };
  for (const auto& item : encoder.named_parameters()) add(item.key(), item.value());
  for (const auto& item : encoder.named_buffers()) add(item.key(), item.value());

  LoadReport report;
  std::vector<std::string> to_load;
  for (const std::string& key : keys) {
    auto source = state_dict.find(key);
    if (source == state_dict.end()) {
      if (!key.ends_with(".num_batches_tracked")) report.missing.push_back(key);
      continue;
    }
    const at::Tensor& target = targets[key].front();
    if (!source->second.defined()) {
      report.mismatched.push_back(key + ": state dict tensor is undefined");
    } else if (Compatible(key, source->second, target)) {
      to_load.push_back(key);
    } else {
      report.mismatched.push_back(Describe(key, source->second, target));
    }
  }
  for (const auto& [key, unused] : state_dict) {
    if (targets.count(key)) continue;
    (key.starts_with("fc.") ? report.ignored : report.unexpected).push_back(key);
  }

  const double width = encoder.options().width_multiplier();
  if (width != 1.0 && !report.mismatched.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("torchvision weights need width_multiplier 1.0, the model has ", width,
                     ": first mismatch ", report.mismatched.front()));
  }
  if (options.strict && !report.clean()) {
    return absl::InvalidArgumentError(
        absl::StrCat("torchvision weights do not fit the ResNet-", encoder.options().depth(),
                     " encoder (nothing was loaded): ", report.ToString()));
  }
  try {
    torch::NoGradGuard no_grad;
    for (const std::string& key : to_load) {
      const at::Tensor& source = state_dict.at(key);
      for (at::Tensor& target : targets[key]) {
        target.copy_(Adapt(key, source, target));
        ++report.tensors_written;
      }
      report.loaded.push_back(key);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("copying torchvision weights: ", e.what_without_backtrace()));
  }
  return report;
}

absl::StatusOr<LoadReport> LoadTorchvisionEncoder(
    UNet& model, const std::map<std::string, at::Tensor>& state_dict, LoadOptions options) {
  return LoadTorchvisionEncoder(model->encoder(), state_dict, options);
}

}  // namespace fedjoint::common::model
