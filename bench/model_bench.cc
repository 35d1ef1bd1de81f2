// Throughput of the segmentation network on CPU: training and inference slices/s, parameter
// count and analytic FLOPs (see docs/performance.md). Not a test: run by hand, e.g.
//   build/bench/fedjoint_model_bench --threads 2 --batch 8 --size 128
// Inference is measured in several configurations (NoGradGuard / InferenceMode, NCHW /
// channels-last, BatchNorms folded or not) in one run.
// bench/model_bench.py runs the same architecture in Python PyTorch for comparison.
// On a machine shared with other processes, run with OMP_WAIT_POLICY=PASSIVE: with libgomp's
// default spinning, 2 threads trained ~10x slower than with it (1.2 vs 12.9 slices/s, load ~8).
// libgomp reads the variable when it loads, so it must be in the environment, not setenv'd.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "common/model/cpu_tensor_cache.h"
#include "common/model/folded_unet.h"
#include "common/model/unet.h"

namespace fm = fedjoint::common::model;

namespace {

// Output resolution of a convolution by its place in the network (input size divisible by 32).
int64_t Downscale(const std::string& name) {
  if (name == "encoder.conv1") return 2;
  for (int64_t k = 1; k <= 4; ++k) {
    if (name.starts_with("encoder.layer" + std::to_string(k) + ".")) return int64_t{2} << k;
  }
  for (int64_t i = 0; i < 5; ++i) {
    if (name.starts_with("decoder.blocks." + std::to_string(i) + ".")) return int64_t{1} << (4 - i);
  }
  return 1;  // heads
}

// Multiply-adds x 2 of every convolution and linear layer for one slice; each slice goes through
// one head, so the heads count as their mean.
double ForwardFlops(fm::UNetImpl& model, int64_t height, int64_t width) {
  double flops = 0, head_flops = 0;
  int64_t heads = 0;
  for (const auto& item : model.named_modules()) {
    const std::string& name = item.key();
    if (auto* conv = item.value()->as<torch::nn::Conv2dImpl>()) {
      const at::Tensor& w = conv->weight;
      const int64_t scale = Downscale(name);
      const double f = 2.0 * static_cast<double>(w.numel()) * static_cast<double>(height / scale) *
                       static_cast<double>(width / scale);
      if (name.starts_with("heads.") || name == "head") {
        head_flops += f;
        ++heads;
      } else {
        flops += f;
      }
    } else if (auto* linear = item.value()->as<torch::nn::LinearImpl>()) {
      flops += 2.0 * static_cast<double>(linear->weight.numel());
    }
  }
  return flops + head_flops / static_cast<double>(std::max<int64_t>(heads, 1));
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Process CPU time: on a shared machine, slices per CPU-second is steadier than wall time.
double CpuSeconds(std::clock_t start) {
  return static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"U-Net training/inference throughput on CPU"};
  int64_t depth = 18, batch = 8, size = 128, threads = 2, train_steps = 20, infer_batches = 20;
  int64_t infer_batch = 16, infer_rounds = 3;
  double width = 0.5;
  std::string variant = "domain", upsample = "nearest", names_out, infer_filter;
  app.add_option("--depth", depth, "ResNet depth: 18, 34, 50");
  app.add_option("--width", width, "width multiplier");
  app.add_option("--variant", variant, "domain or shared")
      ->check(CLI::IsMember({"domain", "shared"}));
  app.add_option("--upsample", upsample)->check(CLI::IsMember({"nearest", "bilinear"}));
  app.add_option("--batch", batch, "training batch (slices, joints mixed)");
  app.add_option("--infer-batch", infer_batch, "inference batch");
  app.add_option("--size", size, "slice height = width (multiple of 32)");
  app.add_option("--threads", threads, "at::set_num_threads");
  app.add_option("--train-steps", train_steps, "0 skips training (e.g. to profile inference)");
  app.add_option("--infer-batches", infer_batches, "batches per round and configuration");
  app.add_option("--infer-rounds", infer_rounds, "rounds over all inference configurations");
  app.add_option("--infer-only", infer_filter,
                 "measure only the inference configurations whose name contains this, e.g. "
                 "\"folded    channels-last\" (for perf record)");
  app.add_option("--names", names_out, "write 'name shape' of every tensor to this file");
  CLI11_PARSE(app, argc, argv);
  if (size % 32 != 0) {
    std::fprintf(stderr, "--size must be a multiple of 32\n");
    return 2;
  }

  at::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);
  auto made =
      fm::MakeUNet(fm::UNetOptions()
                       .depth(depth)
                       .width_multiplier(width)
                       .variant(variant == "shared" ? fm::Variant::kShared : fm::Variant::kDomain)
                       .upsample(upsample == "bilinear" ? fm::UpsampleMode::kBilinear
                                                        : fm::UpsampleMode::kNearest));
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", std::string(made.status().message()).c_str());
    return 2;
  }
  fm::UNet model = *made;
  if (!names_out.empty()) {
    std::ofstream out(names_out);
    for (const auto& item : model->named_parameters()) {
      out << item.key() << " " << item.value().sizes() << "\n";
    }
    for (const auto& item : model->named_buffers()) {
      out << item.key() << " " << item.value().sizes() << "\n";
    }
  }
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  const double flops = ForwardFlops(*model, size, size);
  const int64_t joints = model->num_joints();

  // Training: Adam, cross-entropy per joint + a term on the embeddings, joints mixed per batch.
  model->train();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  at::Tensor x = torch::randn({batch, 1, size, size});
  at::Tensor ids = torch::arange(batch, torch::kLong).remainder(joints);
  std::vector<at::Tensor> targets;
  for (int64_t j = 0; j < joints; ++j) {
    const int64_t n = (ids == j).sum().item<int64_t>();
    targets.push_back(torch::randint(0, 2, {n, size, size}, torch::kLong));
  }
  auto step = [&] {
    optimizer.zero_grad();
    fm::UNetOutput out = model->forward(x, ids);
    at::Tensor loss = torch::zeros({});
    for (int64_t j = 0; j < joints; ++j) {
      if (out.logits[j].defined()) {
        loss = loss + torch::nn::functional::cross_entropy(out.logits[j], targets[j]);
      }
    }
    for (const at::Tensor& z : out.embeddings) loss = loss + 0.1 * z.mean();
    loss.backward();
    optimizer.step();
  };
  for (int i = 0; i < (train_steps > 0 ? 3 : 0); ++i) step();
  auto start = std::chrono::steady_clock::now();
  std::clock_t cpu_start = std::clock();
  for (int64_t i = 0; i < train_steps; ++i) step();
  const double train_rate = static_cast<double>(batch * train_steps) / Seconds(start);
  const double train_cpu = static_cast<double>(batch * train_steps) / CpuSeconds(cpu_start);

  // Inference: eval mode, one joint per batch (as `segment` does), in every combination that
  // matters: autograd off by NoGradGuard or by InferenceMode, NCHW or channels-last, the network
  // as trained or with its BatchNorms folded into the convolutions (folded_unet.h). The
  // configurations take turns, `--infer-rounds` times, so a change of machine load hits them
  // alike; each reports its median round.
  model->eval();
  fm::UNet model_cl = fm::CloneUNet(*model);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model_cl->parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
  auto folded = fm::FoldBatchNorm(*model, 0);
  auto folded_cl = fm::FoldBatchNorm(*model, 0, fm::FoldOptions{.channels_last = true});
  for (const auto* f : {&folded, &folded_cl}) {
    if (!f->ok()) {
      std::fprintf(stderr, "%s\n", f->status().ToString().c_str());
      return 1;
    }
  }
  const at::Tensor xi = torch::randn({infer_batch, 1, size, size});
  const at::Tensor xi_cl = xi.contiguous(torch::MemoryFormat::ChannelsLast);
  struct InferConfig {
    std::string name;
    bool inference_mode;
    bool tensor_cache;
    std::function<void()> run;
    std::vector<double> rates, cpu_rates;
  };
  std::vector<InferConfig> configs;
  auto add = [&](std::string name, bool inference_mode, std::function<void()> run,
                 bool tensor_cache = false) {
    if (name.find(infer_filter) == std::string::npos) return;
    configs.push_back({std::move(name), inference_mode, tensor_cache, std::move(run), {}, {}});
  };
  add("unfolded  NCHW          NoGradGuard", false, [&] { model->forward(xi, 0); });
  add("unfolded  NCHW          InferenceMode", true, [&] { model->forward(xi, 0); });
  add("unfolded  channels-last InferenceMode", true, [&] { model_cl->forward(xi_cl, 0); });
  add("folded    NCHW          NoGradGuard", false, [&] { folded->forward(xi); });
  add("folded    NCHW          InferenceMode", true, [&] { folded->forward(xi); });
  add("folded    channels-last NoGradGuard", false, [&] { folded_cl->forward(xi_cl); });
  add("folded    channels-last InferenceMode", true, [&] { folded_cl->forward(xi_cl); });
  // What `segment` runs: the same with freed activations kept for the next batch
  // (cpu_tensor_cache.h) instead of page-faulting fresh memory in every time.
  add(
      "folded    channels-last InferenceMode cache", true, [&] { folded_cl->forward(xi_cl); },
      /*tensor_cache=*/true);
  auto measure = [&](InferConfig& config, int64_t batches) {
    std::optional<torch::NoGradGuard> no_grad;
    std::optional<c10::InferenceMode> inference;
    std::optional<fm::ScopedCpuTensorCache> cache;
    if (config.tensor_cache) cache.emplace();
    if (config.inference_mode) {
      inference.emplace();
    } else {
      no_grad.emplace();
    }
    const auto wall = std::chrono::steady_clock::now();
    const std::clock_t cpu = std::clock();
    for (int64_t i = 0; i < batches; ++i) config.run();
    config.rates.push_back(static_cast<double>(infer_batch * batches) / Seconds(wall));
    config.cpu_rates.push_back(static_cast<double>(infer_batch * batches) / CpuSeconds(cpu));
  };
  for (auto& config : configs) {  // warm-up (oneDNN primitive creation, allocator)
    measure(config, 2);
    config.rates.clear();
    config.cpu_rates.clear();
  }
  for (int64_t round = 0; round < infer_rounds; ++round) {
    for (auto& config : configs) measure(config, infer_batches);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);

  std::printf(
      "model: depth %ld width %.2f %s, %ld parameters, %.3f GFLOP/slice forward at %ldx%ld\n",
      depth, width, variant.c_str(), parameters, flops / 1e9, size, size);
  std::printf("threads %ld\n", threads);
  if (train_steps > 0) {
    std::printf(
        "train: batch %ld, %.2f slices/s, %.1f GFLOP/s (3x forward), %.2f slices per "
        "CPU-second\n",
        batch, train_rate, 3 * flops * train_rate / 1e9, train_cpu);
  }
  if (configs.empty()) {
    std::fprintf(stderr, "--infer-only '%s' matches no inference configuration\n",
                 infer_filter.c_str());
    return 2;
  }
  // This line keeps the format of earlier versions: the configuration `segment` used before
  // (unfolded, NCHW, InferenceMode), the baseline of the ratios below.
  auto base_it = std::find_if(configs.begin(), configs.end(), [](const InferConfig& c) {
    return c.name.starts_with("unfolded  NCHW          InferenceMode");
  });
  const InferConfig& base = base_it != configs.end() ? *base_it : configs.front();
  std::printf("infer: batch %ld, %.2f slices/s, %.1f GFLOP/s, %.2f slices per CPU-second\n",
              infer_batch, median(base.rates), flops * median(base.rates) / 1e9,
              median(base.cpu_rates));
  std::printf("inference configurations (median of %ld rounds of %ld batches of %ld):\n",
              infer_rounds, infer_batches, infer_batch);
  for (const auto& config : configs) {
    const double rate = median(config.rates);
    std::printf("  infer %-45s %8.2f slices/s  %6.1f GFLOP/s  %7.2f slices per CPU-second  %.2fx\n",
                config.name.c_str(), rate, flops * rate / 1e9, median(config.cpu_rates),
                rate / median(base.rates));
  }
  std::printf("peak RSS %.0f MB\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
  return 0;
}
