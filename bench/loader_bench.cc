// Throughput of the training data pipeline (domain-balanced sampling + augmentation + background
// loading) on in-memory slices, and its cost to a training loop running beside it.
//
//   fedjoint_loader_bench [--size 128] [--batch 8] [--workers 2] [--prefetch 4] [--batches 120]
//                         [--train-threads 2] [--step-ms 570] [--elastic] [--no-augment]
//                         [--worker-threads 1] [--rounds 3]
//
// 1. serial: MakeBatch on the calling thread (one intra-op thread), slices/s.
// 2. loader: the background loader with --workers threads, consumer taking batches as fast as it
//    can, slices/s.
// 3. training proxy: a conv stack on --train-threads intra-op threads calibrated to --step-ms per
//    batch (570 ms per 8 slices ~ the 14 slices/s a ~3 M-parameter U-Net trains at on 2 cores),
//    alone and then fed by the loader: the step-time increase is what the loader costs training,
//    and the consumer's wait time says whether training ever starved.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include "common/data/background_loader.h"
#include "common/data/batch_sampler.h"

namespace {

namespace data = fedjoint::common::data;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of the whole process: unlike wall time, not inflated when other processes share the
// cores, so CPU ms per slice is the stable figure on a busy machine.
double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Three domains of different sizes with bone-like blocks; every other slice has foreground.
std::shared_ptr<const data::SliceDataset> MakeDataset(int64_t size) {
  auto dataset = std::make_shared<data::SliceDataset>();
  const std::vector<int64_t> per_domain = {120, 200, 360};
  std::vector<int64_t> domains;
  for (size_t d = 0; d < per_domain.size(); ++d) {
    dataset->joints.push_back("joint" + std::to_string(d));
    dataset->num_classes.push_back(4);
    domains.insert(domains.end(), per_domain[d], static_cast<int64_t>(d));
  }
  const auto n = static_cast<int64_t>(domains.size());
  at::Tensor index = at::arange(n, at::kFloat).view({n, 1, 1});
  at::Tensor y = at::arange(size, at::kFloat).view({1, size, 1});
  at::Tensor x = at::arange(size, at::kFloat).view({1, 1, size});
  dataset->images = (x * 0.05f + y * 0.11f + index).sin().contiguous();
  dataset->labels = at::zeros({n, size, size}, at::kByte);
  for (int64_t i = 0; i < n; i += 2) {
    dataset->labels[i].slice(0, size / 4, size / 2).slice(1, size / 4, size / 2).fill_(1);
    dataset->labels[i].slice(0, size / 2, 3 * size / 4).slice(1, size / 3, size / 2).fill_(2);
  }
  dataset->foreground = dataset->labels.view({n, -1}).ne(0).any(1).contiguous();
  dataset->domains = at::tensor(domains, at::kLong);
  dataset->subjects = at::zeros({n}, at::kLong);
  dataset->positions = at::rand({n}, at::kFloat);
  dataset->labeled = at::ones({n}, at::kBool);
  dataset->subject_ids = {"bench"};
  return dataset;
}

// A compute-bound stand-in for a training step: `repeats` passes of a small conv stack.
struct TrainingProxy {
  at::Tensor w1 = at::randn({32, 1, 3, 3});
  at::Tensor w2 = at::randn({32, 32, 3, 3}).mul_(0.05);
  int repeats = 1;

  void Step(const at::Tensor& images) const {
    for (int r = 0; r < repeats; ++r) {
      at::Tensor h = at::conv2d(images, w1, {}, 1, 1).relu_();
      h = at::conv2d(h, w2, {}, 1, 1).relu_();
      h.sum().item<float>();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Training data pipeline throughput");
  int64_t size = 128;
  int64_t batch_size = 8;
  int workers = 2;
  int prefetch = 4;
  int batches = 120;
  int train_threads = 2;
  double step_ms = 570.0;
  bool elastic = false;
  bool no_augment = false;
  int worker_threads = 1;
  int rounds = 3;
  app.add_option("--size", size, "slice height and width");
  app.add_option("--batch", batch_size, "batch size");
  app.add_option("--workers", workers, "loader worker threads");
  app.add_option("--prefetch", prefetch, "batches made ahead");
  app.add_option("--batches", batches, "batches per measurement");
  app.add_option("--train-threads", train_threads, "intra-op threads of the training proxy");
  app.add_option("--step-ms", step_ms, "training proxy step time per batch (0: skip part 3)");
  app.add_flag("--elastic", elastic, "also elastic deformation (off by default in training)");
  app.add_flag("--no-augment", no_augment, "sampling only");
  app.add_option("--worker-threads", worker_threads,
                 "intra-op threads per worker (0: the process-wide setting)");
  app.add_option("--rounds", rounds, "alternating alone / fed measurements of the proxy");
  CLI11_PARSE(app, argc, argv);

  at::set_num_threads(train_threads);
  auto dataset = MakeDataset(size);
  data::BatchSamplerOptions options;
  options.batch_size = batch_size;
  options.seed = 1;
  options.augment = !no_augment;
  options.foreground_probability = 0.33;
  if (elastic) options.augment_options.elastic_probability = 0.3;
  auto sampler = data::BatchSampler::Create(dataset, options);
  if (!sampler.ok()) {
    std::fprintf(stderr, "%s\n", sampler.status().ToString().c_str());
    return 1;
  }
  std::printf("slices %lldx%lld, batch %lld, augmentation %s%s, training threads %d\n",
              static_cast<long long>(size), static_cast<long long>(size),
              static_cast<long long>(batch_size), no_augment ? "off" : "default",
              elastic ? " + elastic" : "", train_threads);

  // 1. Serial, one intra-op thread (what each worker does).
  {
    at::set_num_threads(1);
    for (int b = 0; b < 3; ++b) (void)(*sampler)->MakeBatch(99, b);  // warm-up
    const auto start = Clock::now();
    const double cpu = CpuSeconds();
    const int n = std::max(10, batches / 4);
    for (int b = 0; b < n; ++b) {
      if (!(*sampler)->MakeBatch(0, b).ok()) return 1;
    }
    const double s = Seconds(start);
    std::printf(
        "serial MakeBatch (1 thread):      %8.1f slices/s  (%.2f ms/batch, %.2f CPU ms/slice)\n",
        n * batch_size / s, 1000.0 * s / n, 1000.0 * (CpuSeconds() - cpu) / (n * batch_size));
    at::set_num_threads(train_threads);
  }

  data::LoaderOptions loader_options;
  loader_options.num_workers = workers;
  loader_options.prefetch = prefetch;
  loader_options.worker_intra_op_threads = worker_threads;

  // 2. Loader alone.
  {
    auto loader = data::BackgroundLoader::ForSampler(*sampler, loader_options);
    if (!loader.ok()) return 1;
    const auto start = Clock::now();
    const double cpu = CpuSeconds();
    for (int b = 0; b < batches; ++b) {
      if (!(*loader)->Next().ok()) return 1;
    }
    const double s = Seconds(start);
    std::printf(
        "loader, %d workers, idle consumer: %8.1f slices/s  (%.2f ms/batch, %.2f CPU ms/slice)\n",
        workers, batches * batch_size / s, 1000.0 * s / batches,
        1000.0 * (CpuSeconds() - cpu) / (batches * batch_size));
  }

  if (step_ms <= 0) return 0;
  // 3. Training proxy alone, then fed by the loader.
  TrainingProxy proxy;
  at::Tensor fixed = at::randn({batch_size, 1, size, size});
  {
    proxy.Step(fixed);
    const auto start = Clock::now();
    proxy.Step(fixed);
    proxy.Step(fixed);
    const double one = Seconds(start) / 2;
    proxy.repeats = std::max(1, static_cast<int>(step_ms / 1000.0 / one + 0.5));
  }
  const int steps = std::max(8, batches / 8);
  // Alternate, so a change in the machine's load hits both measurements alike.
  for (int round = 0; round < rounds; ++round) {
    auto start = Clock::now();
    double cpu = CpuSeconds();
    for (int b = 0; b < steps; ++b) proxy.Step(fixed);
    const double alone = Seconds(start) / steps;
    const double alone_cpu = (CpuSeconds() - cpu) / steps;

    auto loader = data::BackgroundLoader::ForSampler(*sampler, loader_options);
    if (!loader.ok()) return 1;
    // The first batch is made while nothing else runs (start-up, not steady state).
    absl::StatusOr<data::Batch> batch = (*loader)->Next();
    if (!batch.ok()) return 1;
    const double startup_wait = (*loader)->stats().consumer_wait_seconds;
    start = Clock::now();
    cpu = CpuSeconds();
    for (int b = 0; b < steps; ++b) {
      proxy.Step(batch->images);
      batch = (*loader)->Next();
      if (!batch.ok()) return 1;
    }
    const double fed = Seconds(start) / steps;
    const double fed_cpu = (CpuSeconds() - cpu) / steps;
    const data::LoaderStats stats = (*loader)->stats();
    std::printf(
        "training proxy: %.0f ms/step alone, %.0f ms/step fed by the loader (%+.1f%%), "
        "%.1f slices/s trained; process CPU %.0f -> %.0f ms/step; consumer waited %.3f s in %d "
        "steps (+ %.3f s for the first batch)\n",
        1000.0 * alone, 1000.0 * fed, 100.0 * (fed / alone - 1.0), batch_size / fed,
        1000.0 * alone_cpu, 1000.0 * fed_cpu, stats.consumer_wait_seconds - startup_wait, steps,
        startup_wait);
  }
  return 0;
}
