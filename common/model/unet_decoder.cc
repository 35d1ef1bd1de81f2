#include "common/model/unet_decoder.h"

#include <torch/torch.h>

#include "common/model/domain_batch_norm.h"

namespace fedjoint::common::model {

class DecoderBlockImpl : public torch::nn::Module {
 public:
  DecoderBlockImpl(int64_t in, int64_t out, const DomainBatchNorm2dOptions& norm) {
    auto conv = [](int64_t from, int64_t to) {
      return std::make_shared<torch::nn::Conv2dImpl>(
          torch::nn::Conv2dOptions(from, to, 3).padding(1).bias(false));
    };
    conv1_ = register_module("conv1", conv(in, out));
    bn1_ = register_module("bn1", std::make_shared<DomainBatchNorm2dImpl>(
                                      DomainBatchNorm2dOptions(norm).num_features(out)));
    conv2_ = register_module("conv2", conv(out, out));
    bn2_ = register_module("bn2", std::make_shared<DomainBatchNorm2dImpl>(
                                      DomainBatchNorm2dOptions(norm).num_features(out)));
  }

  at::Tensor forward(const at::Tensor& x, std::span<const int64_t> sizes) {
    at::Tensor y = torch::relu(bn1_->forward_grouped(conv1_->forward(x), sizes));
    return torch::relu(bn2_->forward_grouped(conv2_->forward(y), sizes));
  }

 private:
  std::shared_ptr<torch::nn::Conv2dImpl> conv1_, conv2_;
  std::shared_ptr<DomainBatchNorm2dImpl> bn1_, bn2_;
};

UNetDecoderImpl::UNetDecoderImpl(UNetDecoderOptions options) : options_(std::move(options)) {
  const auto& encoder = options_.encoder_channels();
  const auto& decoder = options_.decoder_channels();
  TORCH_CHECK(decoder.size() == 5, "the U-Net decoder needs 5 block widths, got ", decoder.size());
  DomainBatchNorm2dOptions norm = DomainBatchNorm2dOptions(decoder[0], options_.domains())
                                      .eps(options_.bn_eps())
                                      .momentum(options_.bn_momentum());
  auto list = register_module("blocks", torch::nn::ModuleList());
  int64_t in = encoder[4];
  for (int64_t i = 0; i < 5; ++i) {
    const int64_t skip = i < 4 ? encoder[3 - i] : 0;
    auto block = std::make_shared<DecoderBlockImpl>(in + skip, decoder[i], norm);
    list->push_back(block);
    blocks_.push_back(std::move(block));
    in = decoder[i];
  }
}

at::Tensor UNetDecoderImpl::forward(const std::vector<at::Tensor>& features,
                                    std::array<int64_t, 2> output_size,
                                    std::span<const int64_t> group_sizes) {
  TORCH_CHECK(features.size() == 5, "the U-Net decoder needs 5 feature maps, got ",
              features.size());
  at::Tensor y = features[4];
  for (int64_t i = 0; i < 5; ++i) {
    // Upsampling to the skip's exact size (not x2) keeps odd input sizes working.
    std::vector<int64_t> size =
        i < 4 ? std::vector<int64_t>{features[3 - i].size(2), features[3 - i].size(3)}
              : std::vector<int64_t>{output_size[0], output_size[1]};
    y = options_.upsample() == UpsampleMode::kBilinear
            ? at::upsample_bilinear2d(y, size, /*align_corners=*/false)
            : at::upsample_nearest2d(y, size);
    if (i < 4) y = torch::cat({y, features[3 - i]}, 1);
    y = blocks_[i]->forward(y, group_sizes);
  }
  return y;
}

}  // namespace fedjoint::common::model
