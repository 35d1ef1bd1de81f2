// Throughput of the weights container on a model-sized file (default ~200 MB of F32):
// content digest alone, in-memory serialization, atomic write (incl. fsync), and open + validate
// (+ digest verification) of the memory-mapped file. Reads right after writing hit the page cache.
//
//   fedjoint_tensors_bench [--mb 200] [--dir /tmp] [--repeats 3]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/tensors/digest.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"

namespace {

namespace fs = std::filesystem;
namespace tensors = fedjoint::common::tensors;

struct Owned {
  std::string name;
  tensors::DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

// A U-Net-like mix: big conv weights plus many small biases / norm parameters / counters.
std::vector<Owned> MakeModel(std::size_t total_mb) {
  std::mt19937_64 rng(42);
  std::vector<Owned> model;
  const int64_t big_elements = 1 << 20;  // 4 MiB per F32 weight
  std::size_t big_count = std::max<std::size_t>(1, total_mb / 4);
  for (std::size_t i = 0; i < big_count; ++i) {
    Owned t{"encoder.block" + std::to_string(i) + ".conv.weight",
            tensors::DType::kF32,
            {256, 256, 4, 4},
            std::vector<std::byte>(big_elements * 4)};
    for (std::size_t j = 0; j < t.bytes.size(); j += 8) {
      uint64_t r = rng();
      std::memcpy(t.bytes.data() + j, &r, 8);
    }
    model.push_back(std::move(t));
    model.push_back({"encoder.block" + std::to_string(i) + ".norm.bias",
                     tensors::DType::kF32,
                     {256},
                     std::vector<std::byte>(256 * 4, std::byte{1})});
    model.push_back({"encoder.block" + std::to_string(i) + ".norm.num_batches_tracked",
                     tensors::DType::kI64,
                     {},
                     std::vector<std::byte>(8, std::byte{2})});
  }
  return model;
}

// Best wall time and best CPU time (user + system of this process) over `repeats` runs. On a
// shared machine the CPU time shows the cost without waiting for a core; fsync waits show only in
// the wall time.
struct Timing {
  double wall = 1e30;
  double cpu = 1e30;
};

double CpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Timing Measure(const std::function<void()>& body, int repeats) {
  Timing best;
  for (int r = 0; r < repeats; ++r) {
    double cpu_start = CpuSeconds();
    auto start = std::chrono::steady_clock::now();
    body();
    best.wall = std::min(
        best.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    best.cpu = std::min(best.cpu, CpuSeconds() - cpu_start);
  }
  return best;
}

void Report(const char* what, const Timing& t, double mb) {
  std::printf("%-42s wall %8.1f ms %7.0f MB/s | cpu %8.1f ms %7.0f MB/s\n", what, t.wall * 1e3,
              mb / t.wall, t.cpu * 1e3, mb / t.cpu);
}

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "tensors_bench: %s\n", what.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mb = 200;
  fs::path dir = fs::temp_directory_path();
  int repeats = 3;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    Check(i + 1 < argc, flag + " needs a value");
    if (flag == "--mb") {
      mb = std::stoul(argv[i + 1]);
    } else if (flag == "--dir") {
      dir = argv[i + 1];
    } else if (flag == "--repeats") {
      repeats = std::stoi(argv[i + 1]);
    } else {
      Check(false, "unknown flag " + flag + " (use --mb N, --dir DIR, --repeats N)");
    }
  }
  std::vector<Owned> model = MakeModel(mb);
  std::vector<tensors::TensorRef> refs;
  for (const Owned& t : model) refs.push_back({t.name, t.dtype, t.shape, t.bytes});
  fs::path path = dir / ("fedjoint_tensors_bench_" + std::to_string(::getpid()) + ".safetensors");

  double file_mb = 0;
  Timing digest = Measure([&] { Check(tensors::ComputeDigest(refs).ok(), "digest"); }, repeats);
  Timing serialize = Measure(
      [&] {
        auto bytes = tensors::SerializeSafetensors(refs);
        Check(bytes.ok(), "serialize");
        file_mb = static_cast<double>(bytes->size()) / 1e6;
      },
      repeats);
  Timing write = Measure(
      [&] {
        absl::Status status = tensors::WriteSafetensors(path, refs);
        Check(status.ok(), std::string(status.message()));
      },
      repeats);
  Timing verify = Measure(
      [&] {
        auto file = tensors::SafetensorsFile::Open(path);
        Check(file.ok(), std::string(file.status().message()));
      },
      repeats);
  tensors::SafetensorsReadOptions lazy;
  lazy.verify_digest = false;
  Timing open = Measure(
      [&] {
        auto file = tensors::SafetensorsFile::Open(path, lazy);
        Check(file.ok(), std::string(file.status().message()));
      },
      repeats);
  fs::remove(path);

  std::printf("file: %.1f MB, %zu tensors, best of %d\n", file_mb, refs.size(), repeats);
  Report("ComputeDigest (SHA-256, in memory)", digest, file_mb);
  Report("SerializeSafetensors (digest + copy)", serialize, file_mb);
  Report("WriteSafetensors (digest + write + fsync)", write, file_mb);
  Report("Open + validate + verify digest (mmap)", verify, file_mb);
  std::printf("%-42s wall %8.3f ms\n", "Open + validate, no digest (lazy mmap)", open.wall * 1e3);
  return 0;
}
