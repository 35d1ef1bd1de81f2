#include "common/model/folded_unet.h"

#include <map>
#include <string>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace fedjoint::common::model {
namespace {

using ModuleMap = std::map<std::string, std::shared_ptr<torch::nn::Module>>;

template <typename T>
T* Find(const ModuleMap& modules, const std::string& name) {
  auto it = modules.find(name);
  return it == modules.end() ? nullptr : dynamic_cast<T*>(it->second.get());
}

// A missing module is a layout the folding does not know: report it by name.
struct MissingModule {
  std::string name;
};

torch::nn::Conv2dImpl& RequireConv(const ModuleMap& modules, const std::string& name) {
  auto* conv = Find<torch::nn::Conv2dImpl>(modules, name);
  if (conv == nullptr) throw MissingModule{name};
  return *conv;
}

// `t` laid out NHWC, with NHWC strides even where the layout is ambiguous. With one channel (the
// input, the stem's weights) NCHW and NHWC hold the same bytes, and contiguous(ChannelsLast)
// keeps the NCHW strides; oneDNN then picks NCHW for the stem, whose output, the max-pooling and
// every skip concatenation of it would run NCHW (slower) and be copied to NHWC by the next
// convolution.
at::Tensor ChannelsLastStrides(const at::Tensor& t) {
  if (t.dim() != 4 || (t.is_contiguous(at::MemoryFormat::ChannelsLast) && t.stride(1) == 1)) {
    return t;
  }
  return at::empty(t.sizes(), t.options().memory_format(at::MemoryFormat::ChannelsLast)).copy_(t);
}

}  // namespace

at::Tensor FoldedUNet::Conv::operator()(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

int64_t FoldedUNet::num_parameters() const {
  int64_t count = 0;
  auto add = [&](const Conv& conv) {
    if (conv.weight.defined()) count += conv.weight.numel() + conv.bias.numel();
  };
  add(stem_);
  for (const auto& stage : stages_) {
    for (const Block& block : stage) {
      add(block.conv1);
      add(block.conv2);
      add(block.conv3);
      add(block.downsample);
    }
  }
  for (const DecoderBlock& block : decoder_) {
    add(block.conv1);
    add(block.conv2);
  }
  add(head_);
  return count;
}

at::Tensor FoldedUNet::forward(const at::Tensor& x) const {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == in_channels_ && x.size(0) > 0,
              "folded U-Net input must be [B >= 1, ", in_channels_, ", H, W], got ", x.sizes());
  const at::Tensor input = channels_last_ ? ChannelsLastStrides(x) : x.contiguous();
  // Every intermediate tensor is this function's own, so the ReLUs and the residual sums run in
  // place (no extra pass allocating an output).
  std::array<at::Tensor, 5> features;
  at::Tensor y = stem_(input).relu_();
  features[0] = y;
  y = at::max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
  for (size_t s = 0; s < stages_.size(); ++s) {
    for (const Block& block : stages_[s]) {
      at::Tensor out = block.conv2(block.conv1(y).relu_());
      if (block.conv3.weight.defined()) out = block.conv3(out.relu_());
      out.add_(block.downsample.weight.defined() ? block.downsample(y) : y).relu_();
      y = std::move(out);
    }
    features[s + 1] = y;
  }
  y = features[4];
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const bool skip = i < 4;
    std::vector<int64_t> size =
        skip ? std::vector<int64_t>{features[3 - i].size(2), features[3 - i].size(3)}
             : std::vector<int64_t>{x.size(2), x.size(3)};
    y = upsample_ == UpsampleMode::kBilinear
            ? at::upsample_bilinear2d(y, size, /*align_corners=*/false)
            : at::upsample_nearest2d(y, size);
    if (skip) y = at::cat({y, features[3 - i]}, 1);
    y = decoder_[i].conv2(decoder_[i].conv1(y).relu_()).relu_();
  }
  return head_(y);
}

absl::StatusOr<FoldedUNet> FoldBatchNorm(const UNetImpl& model, int64_t joint,
                                         const FoldOptions& options) {
  if (joint < 0 || joint >= model.num_joints()) {
    return absl::InvalidArgumentError(absl::StrCat("folding the U-Net's BatchNorms: joint ", joint,
                                                   " is out of range [0, ", model.num_joints(),
                                                   ")"));
  }
  const UNetOptions& net = model.options();
  const bool shared = net.variant() == Variant::kShared;
  const std::string domain = shared ? std::string("shared") : net.joints()[joint].name;

  ModuleMap modules;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    modules.emplace(item.key(), item.value());
  }

  // Copies a convolution; with `norm` non-empty, folds that BatchNorm (its domain child) into it.
  auto fold = [&](const std::string& conv_name, const std::string& norm) {
    torch::nn::Conv2dImpl& conv = RequireConv(modules, conv_name);
    const auto& o = conv.options;
    const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
    TORCH_CHECK(padding != nullptr && (**padding)[0] == (**padding)[1] &&
                    (*o.stride())[0] == (*o.stride())[1] && (*o.dilation())[0] == 1 &&
                    (*o.dilation())[1] == 1 && o.groups() == 1 && !o.transposed() &&
                    c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()),
                "folding: convolution '", conv_name, "' has an unsupported configuration");
    FoldedUNet::Conv out;
    out.stride = (*o.stride())[0];
    out.padding = (**padding)[0];
    // In double, so the folded weights are the exact product rounded once.
    at::Tensor weight = conv.weight.detach().to(at::kDouble);
    at::Tensor bias = conv.bias.defined() ? conv.bias.detach().to(at::kDouble)
                                          : torch::zeros({weight.size(0)}, torch::kDouble);
    if (!norm.empty()) {
      const std::string bn_name = norm + ".norms." + domain;
      auto* bn = Find<torch::nn::BatchNorm2dImpl>(modules, bn_name);
      if (bn == nullptr) throw MissingModule{bn_name};
      TORCH_CHECK(bn->running_mean.defined() && bn->running_var.defined(), "folding: '", bn_name,
                  "' has no running statistics");
      at::Tensor mean = bn->running_mean.detach().to(at::kDouble);
      at::Tensor var = bn->running_var.detach().to(at::kDouble);
      at::Tensor gamma =
          bn->weight.defined() ? bn->weight.detach().to(at::kDouble) : torch::ones_like(mean);
      at::Tensor beta =
          bn->bias.defined() ? bn->bias.detach().to(at::kDouble) : torch::zeros_like(mean);
      at::Tensor scale = gamma / (var + bn->options.eps()).sqrt();
      weight = weight * scale.view({-1, 1, 1, 1});
      bias = beta + (bias - mean) * scale;
    }
    out.weight = options.channels_last ? ChannelsLastStrides(weight.to(at::kFloat))
                                       : weight.to(at::kFloat).contiguous();
    out.bias = bias.to(at::kFloat).contiguous();
    return out;
  };

  FoldedUNet folded;
  try {
    torch::NoGradGuard no_grad;
    folded.joint_ = joint;
    folded.in_channels_ = net.in_channels();
    folded.channels_last_ = options.channels_last;
    folded.upsample_ = net.upsample();
    folded.stem_ = fold("encoder.conv1", "encoder.bn1");
    for (int64_t s = 0; s < 4; ++s) {
      const std::string stage = "encoder.layer" + std::to_string(s + 1) + ".";
      for (int64_t b = 0; modules.contains(stage + std::to_string(b)); ++b) {
        const std::string p = stage + std::to_string(b) + ".";
        FoldedUNet::Block block;
        block.conv1 = fold(p + "conv1", p + "bn1");
        block.conv2 = fold(p + "conv2", p + "bn2");
        if (modules.contains(p + "conv3")) block.conv3 = fold(p + "conv3", p + "bn3");
        if (modules.contains(p + "downsample")) {
          block.downsample = fold(p + "downsample.0", p + "downsample.1");
        }
        folded.stages_[s].push_back(std::move(block));
      }
      if (folded.stages_[s].empty()) throw MissingModule{stage + "0"};
    }
    for (int64_t i = 0; i < 5; ++i) {
      const std::string p = "decoder.blocks." + std::to_string(i) + ".";
      folded.decoder_.push_back({fold(p + "conv1", p + "bn1"), fold(p + "conv2", p + "bn2")});
    }
    folded.head_ = fold(shared ? std::string("head") : "heads." + net.joints()[joint].name, "");
  } catch (const MissingModule& missing) {
    return absl::InternalError(absl::StrCat("folding the U-Net's BatchNorms: the model has no '",
                                            missing.name, "' (domain '", domain, "')"));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("folding the U-Net's BatchNorms: ", e.what_without_backtrace()));
  }
  return folded;
}

}  // namespace fedjoint::common::model
