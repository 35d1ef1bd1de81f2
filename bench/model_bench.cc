// Throughput of the segmentation network on CPU: training and inference slices/s, parameter
// count and analytic FLOPs (see docs/performance.md). Not a test: run by hand, e.g.
//   build/bench/fedjoint_model_bench --threads 2 --batch 8 --size 128
// bench/model_bench.py runs the same architecture in Python PyTorch for comparison.
// On a machine shared with other processes, run with OMP_WAIT_POLICY=PASSIVE: with libgomp's
// default spinning, 2 threads trained ~10x slower than with it (1.2 vs 12.9 slices/s, load ~8).
// libgomp reads the variable when it loads, so it must be in the environment, not setenv'd.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

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
  int64_t infer_batch = 16;
  double width = 0.5;
  std::string variant = "domain", upsample = "nearest", names_out;
  app.add_option("--depth", depth, "ResNet depth: 18, 34, 50");
  app.add_option("--width", width, "width multiplier");
  app.add_option("--variant", variant, "domain or shared")
      ->check(CLI::IsMember({"domain", "shared"}));
  app.add_option("--upsample", upsample)->check(CLI::IsMember({"nearest", "bilinear"}));
  app.add_option("--batch", batch, "training batch (slices, joints mixed)");
  app.add_option("--infer-batch", infer_batch, "inference batch");
  app.add_option("--size", size, "slice height = width (multiple of 32)");
  app.add_option("--threads", threads, "at::set_num_threads");
  app.add_option("--train-steps", train_steps);
  app.add_option("--infer-batches", infer_batches);
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
  for (int i = 0; i < 3; ++i) step();
  auto start = std::chrono::steady_clock::now();
  std::clock_t cpu_start = std::clock();
  for (int64_t i = 0; i < train_steps; ++i) step();
  const double train_rate = static_cast<double>(batch * train_steps) / Seconds(start);
  const double train_cpu = static_cast<double>(batch * train_steps) / CpuSeconds(cpu_start);

  // Inference: eval mode, no autograd, one joint per batch (as `segment` does).
  model->eval();
  double infer_rate = 0, infer_cpu = 0;
  {
    c10::InferenceMode guard;
    at::Tensor xi = torch::randn({infer_batch, 1, size, size});
    for (int i = 0; i < 2; ++i) model->forward(xi, 0);
    start = std::chrono::steady_clock::now();
    cpu_start = std::clock();
    for (int64_t i = 0; i < infer_batches; ++i) model->forward(xi, 0);
    infer_rate = static_cast<double>(infer_batch * infer_batches) / Seconds(start);
    infer_cpu = static_cast<double>(infer_batch * infer_batches) / CpuSeconds(cpu_start);
  }
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);

  std::printf(
      "model: depth %ld width %.2f %s, %ld parameters, %.3f GFLOP/slice forward at %ldx%ld\n",
      depth, width, variant.c_str(), parameters, flops / 1e9, size, size);
  std::printf("threads %ld\n", threads);
  std::printf(
      "train: batch %ld, %.2f slices/s, %.1f GFLOP/s (3x forward), %.2f slices per CPU-second\n",
      batch, train_rate, 3 * flops * train_rate / 1e9, train_cpu);
  std::printf("infer: batch %ld, %.2f slices/s, %.1f GFLOP/s, %.2f slices per CPU-second\n",
              infer_batch, infer_rate, flops * infer_rate / 1e9, infer_cpu);
  std::printf("peak RSS %.0f MB\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
  return 0;
}
