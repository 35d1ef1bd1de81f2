#include "common/model/unet.h"

#include <set>
#include <stdexcept>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/domain_batch_norm.h"
#include "common/model/init.h"
#include "common/model/projection_head.h"
#include "common/model/resnet_encoder.h"

namespace fedjoint::common::model {
namespace {

std::shared_ptr<torch::nn::Conv2dImpl> Head(int64_t in, int64_t out) {
  return std::make_shared<torch::nn::Conv2dImpl>(torch::nn::Conv2dOptions(in, out, 1));
}

}  // namespace

absl::Status ValidateUNetOptions(const UNetOptions& options) {
  if (options.depth() != 18 && options.depth() != 34 && options.depth() != 50) {
    return absl::InvalidArgumentError(
        absl::StrCat("UNetOptions.depth: ", options.depth(), " is not one of 18, 34, 50"));
  }
  if (!(options.width_multiplier() > 0.0 && options.width_multiplier() <= 4.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UNetOptions.width_multiplier: ", options.width_multiplier(), " is not in (0, 4]"));
  }
  if (options.in_channels() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("UNetOptions.in_channels: ", options.in_channels(), " must be >= 1"));
  }
  if (absl::Status joints = ValidateJoints(options.joints()); !joints.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("UNetOptions.", joints.message()));
  }
  const auto& decoder = options.decoder_channels();
  if (!decoder.empty()) {
    if (decoder.size() != 5) {
      return absl::InvalidArgumentError(
          absl::StrCat("UNetOptions.decoder_channels: needs 5 widths (deepest first), got ",
                       decoder.size(), " [", absl::StrJoin(decoder, ", "), "]"));
    }
    for (int64_t c : decoder) {
      if (c < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("UNetOptions.decoder_channels: width ", c, " must be >= 1"));
      }
    }
  }
  std::set<int64_t> stages;
  for (int64_t stage : options.projection_stages()) {
    if (stage < 0 || stage > 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("UNetOptions.projection_stages: ", stage,
                       " is not a stage (0 = stem, 1..4 = layer1..4)"));
    }
    if (!stages.insert(stage).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("UNetOptions.projection_stages: stage ", stage, " appears twice"));
    }
  }
  if (options.projection_hidden() < 1 || options.projection_dim() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("UNetOptions.projection_hidden/projection_dim: ", options.projection_hidden(),
                     "/", options.projection_dim(), " must both be >= 1"));
  }
  if (!(options.bn_eps() > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("UNetOptions.bn_eps: ", options.bn_eps(), " must be > 0"));
  }
  if (!(options.bn_momentum() > 0.0 && options.bn_momentum() <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("UNetOptions.bn_momentum: ", options.bn_momentum(), " is not in (0, 1]"));
  }
  return absl::OkStatus();
}

std::vector<int64_t> ResolvedDecoderChannels(const UNetOptions& options) {
  if (!options.decoder_channels().empty()) return options.decoder_channels();
  std::vector<int64_t> channels;
  for (int64_t base : {256, 128, 64, 32, 16}) {
    channels.push_back(std::max<int64_t>(8, ScaledChannels(base, options.width_multiplier())));
  }
  return channels;
}

std::vector<std::string> NormDomains(const UNetOptions& options) {
  if (options.variant() == Variant::kShared) return {"shared"};
  std::vector<std::string> domains;
  for (const JointSpec& joint : options.joints()) domains.push_back(joint.name);
  return domains;
}

std::string StageName(int64_t stage) {
  return stage == 0 ? std::string("stem") : "layer" + std::to_string(stage);
}

UNetImpl::UNetImpl(UNetOptions options) : options_(std::move(options)) {
  if (absl::Status valid = ValidateUNetOptions(options_); !valid.ok()) {
    TORCH_CHECK(false, std::string(valid.message()));
  }
  const std::vector<std::string> domains = NormDomains(options_);
  encoder_ = register_module("encoder", std::make_shared<ResNetEncoderImpl>(
                                            ResNetEncoderOptions()
                                                .depth(options_.depth())
                                                .width_multiplier(options_.width_multiplier())
                                                .in_channels(options_.in_channels())
                                                .domains(domains)
                                                .bn_eps(options_.bn_eps())
                                                .bn_momentum(options_.bn_momentum())));
  decoder_ =
      register_module("decoder", std::make_shared<UNetDecoderImpl>(
                                     UNetDecoderOptions(encoder_->feature_channels(),
                                                        ResolvedDecoderChannels(options_), domains)
                                         .upsample(options_.upsample())
                                         .bn_eps(options_.bn_eps())
                                         .bn_momentum(options_.bn_momentum())));
  const int64_t features = decoder_->out_channels();
  if (options_.variant() == Variant::kShared) {
    heads_.push_back(
        register_module("head", Head(features, SharedHeadChannels(options_.joints()))));
  } else {
    std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> children;
    for (const JointSpec& joint : options_.joints()) {
      heads_.push_back(Head(features, joint.NumClasses()));
      children.emplace_back(joint.name, heads_.back());
    }
    register_module("heads", torch::nn::ModuleDict(children));
  }
  if (!options_.projection_stages().empty()) {
    std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> children;
    for (int64_t stage : options_.projection_stages()) {
      projections_.push_back(std::make_shared<ProjectionHeadImpl>(
          ProjectionHeadOptions(encoder_->feature_channels()[stage], options_.projection_hidden(),
                                options_.projection_dim())));
      children.emplace_back(StageName(stage), projections_.back());
    }
    register_module("projections", torch::nn::ModuleDict(children));
  }
  InitializeWeights(*this);
  // Kaiming fan-out on a 1x1 conv with 3-8 outputs would start with logits of std ~1; Xavier keeps
  // the initial softmax near uniform.
  torch::NoGradGuard no_grad;
  for (const auto& head : heads_) torch::nn::init::xavier_uniform_(head->weight);
}

std::optional<int64_t> UNetImpl::JointIndex(std::string_view name) const {
  return FindJoint(options_.joints(), name);
}

int64_t UNetImpl::OutputChannels(int64_t joint) const {
  TORCH_CHECK(joint >= 0 && joint < num_joints(), "joint ", joint, " is out of range [0, ",
              num_joints(), ")");
  return options_.variant() == Variant::kShared ? SharedHeadChannels(options_.joints())
                                                : options_.joints()[joint].NumClasses();
}

UNetOutput UNetImpl::forward(const at::Tensor& x, const at::Tensor& joints) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels() && x.size(0) > 0,
              "U-Net input must be [B >= 1, ", options_.in_channels(), ", H, W], got ", x.sizes());
  TORCH_CHECK(joints.dim() == 1 && joints.size(0) == x.size(0), "expected ", x.size(0),
              " joint ids (int64 [B]), got ", joints.sizes());
  const int64_t batch = x.size(0);
  DomainGrouping grouping = GroupByDomain(joints, num_joints());
  const bool permuted = grouping.order.defined();
  at::Tensor grouped = permuted ? x.index_select(0, grouping.order.to(x.device())) : x;
  const std::vector<int64_t> norm_sizes =
      options_.variant() == Variant::kShared ? std::vector<int64_t>{batch} : grouping.sizes;

  std::vector<at::Tensor> features = encoder_->forward(grouped, norm_sizes);
  UNetOutput out;
  for (std::size_t p = 0; p < projections_.size(); ++p) {
    at::Tensor z = projections_[p]->forward(features[options_.projection_stages()[p]]);
    out.embeddings.push_back(permuted ? z.index_select(0, grouping.inverse.to(z.device())) : z);
  }
  at::Tensor decoded = decoder_->forward(features, {x.size(2), x.size(3)}, norm_sizes);

  int64_t start = 0;
  for (int64_t j = 0; j < num_joints(); ++j) {
    const int64_t n = grouping.sizes[j];
    if (n == 0) {
      out.logits.emplace_back();
      out.sample_indices.push_back(torch::empty({0}, torch::dtype(torch::kLong)));
      continue;
    }
    const auto& head = options_.variant() == Variant::kShared ? heads_[0] : heads_[j];
    out.logits.push_back(head->forward(decoded.narrow(0, start, n)));
    out.sample_indices.push_back(permuted ? grouping.order.narrow(0, start, n)
                                          : torch::arange(start, start + n, torch::kLong));
    start += n;
  }
  return out;
}

UNetOutput UNetImpl::forward(const at::Tensor& x, int64_t joint) {
  TORCH_CHECK(joint >= 0 && joint < num_joints(), "joint ", joint, " is out of range [0, ",
              num_joints(), ")");
  TORCH_CHECK(x.dim() == 4, "U-Net input must be [B, C, H, W], got ", x.sizes());
  return forward(x, torch::full({x.size(0)}, joint, torch::kLong));
}

absl::StatusOr<UNet> MakeUNet(const UNetOptions& options) {
  if (absl::Status valid = ValidateUNetOptions(options); !valid.ok()) return valid;
  try {
    return UNet(options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building the U-Net: ", e.what_without_backtrace()));
  }
}

UNet CloneUNet(const UNetImpl& model) {
  UNet copy(model.options());
  torch::NoGradGuard no_grad;
  auto params = copy->named_parameters();
  for (const auto& item : model.named_parameters()) params[item.key()].copy_(item.value());
  auto buffers = copy->named_buffers();
  for (const auto& item : model.named_buffers()) buffers[item.key()].copy_(item.value());
  copy->train(model.is_training());
  return copy;
}

}  // namespace fedjoint::common::model
