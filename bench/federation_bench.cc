// The federation's costs on one machine, with a real coordinator (job + gRPC server, mutual TLS on
// 127.0.0.1) and real site clients. Modes (default: all but rss's extra sizes):
//
//   transfer   model download MB/s end to end (transfer SHA-256, signature check, safetensors
//              parse + content digest) next to a bare gRPC server stream over the same mutual
//              TLS moving the same bytes in the same chunk size
//   wire       bytes a site sends and receives in one round (TCP payload through a counting
//              proxy: TLS, HTTP/2 and protobuf framing included) against the model size
//   round      round overhead: round wall time minus local training time, S sites doing no
//              training (plus --light-sites with a small model)
//   aggregate  ScopedFedAvg GB/s on U updates of N floats (as the coordinator runs it, and two
//              other ways) next to a read-only memory probe (a sum of the same floats, 2 threads)
//   rss        the coordinator's peak RSS (a child process) with 1, 8, 32 sites at one model size
//
//   fedjoint_federation_bench [--mode all|transfer|wire|round|aggregate|rss] [--params 10000000]
//       [--chunk-kb 1024] [--repeats 3] [--sites 3] [--rounds 3] [--light-sites 32,100]
//       [--agg-floats 30000000] [--agg-updates 8] [--rss-sites 1,8,32] [--json FILE]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/federation_bench_env.h"
#include "common/aggregation/fedavg.h"
#include "common/base/atomic_file.h"
#include "common/log/logging.h"
#include "common/security/model_signing.h"
#include "common/security/revocation_list.h"
#include "common/security/tls_credentials.h"
#include "common/tensors/safetensors_file.h"
#include "common/tensors/safetensors_writer.h"
#include "common/tensors/torch_tensors.h"
#include "site_agent/federation/site_runner.h"

namespace fedjoint::bench {
namespace {

namespace fs = std::filesystem;
namespace tensors = common::tensors;

struct Args {
  std::string mode = "all";
  int64_t params = 10'000'000;
  int64_t chunk_kb = 1024;
  int repeats = 3;
  int sites = 3;
  int rounds = 3;
  std::string light_sites;
  int64_t light_params = 100'000;
  int64_t agg_floats = 30'000'000;
  int agg_updates = 8;
  std::string rss_sites = "1,8,32";
  std::string json_path;
  std::string log_level = "warn";
  int64_t window_kb = -1;  // coordinator's HTTP/2 stream window (-1: its default)
  int max_transfers = -1;  // coordinator's concurrent transfers (-1: its default)
  std::string dir;         // rss-child: the working folder made by the parent
  int child_sites = 0;
};

// CPU time of this whole process (all threads), user + system.
double CpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + 1e-6 * double(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void Die(const absl::Status& s, const std::string& what) {
  if (s.ok()) return;
  std::cerr << what << ": " << s << "\n";
  std::exit(1);
}

std::vector<int> IntList(const std::string& text) {
  std::vector<int> out;
  for (auto part : absl::StrSplit(text, ',', absl::SkipEmpty()))
    out.push_back(std::stoi(std::string(part)));
  return out;
}

// The coordinator's setup for this run: the model and chunk size, and the server limits from the
// command line.
CoordinatorSetup SetupFor(const Args& args, int sites, int64_t params, int rounds = 1) {
  CoordinatorSetup setup;
  setup.rounds = rounds;
  setup.sites = sites;
  setup.params = params;
  setup.chunk_bytes = args.chunk_kb << 10;
  setup.stream_window_bytes = args.window_kb < 0 ? -1 : args.window_kb << 10;
  setup.max_transfers = args.max_transfers;
  return setup;
}

// Joins as `site` and waits for the round's TRAIN task.
std::pair<std::string, v1::Task> JoinAndWait(site_agent::CoordinatorClient* client, int site) {
  v1::JoinRequest join;
  join.set_version(v1::PROTOCOL_VERSION_1);
  join.set_site(SiteName(site));
  auto* d = join.add_domains();
  d->set_joint("knee");
  d->set_num_samples(1);
  auto joined = client->Join(join);
  Die(joined.status(), "join");
  for (;;) {
    auto task = client->GetTask(joined->session_id(), 0);
    Die(task.status(), "get task");
    if (task->kind() == v1::Task::TRAIN) return {joined->session_id(), *task};
  }
}

// An update with every tensor of FlatModel(params), all pointing into one shared buffer.
struct SharedUpdate {
  explicit SharedUpdate(int64_t params) : values(size_t(params), 0.5f) {
    constexpr int64_t kTensor = 1 << 20;
    for (int64_t done = 0, i = 0; done < params; ++i) {
      const int64_t n = std::min(kTensor, params - done);
      refs.push_back({absl::StrCat("encoder.layer", i, ".weight"),
                      tensors::DType::kF32,
                      {n},
                      std::as_bytes(std::span<const float>(values.data() + done, size_t(n)))});
      done += n;
    }
    auto encoded = tensors::EncodeSafetensors(refs, {});
    Die(encoded.status(), "encode update");
    encoding = std::move(*encoded);
  }
  std::vector<float> values;
  std::vector<tensors::TensorRef> refs;
  tensors::SafetensorsEncoding encoding;
};

// ------------------------------------------------------------------------------------ transfer

nlohmann::json Transfer(const Args& args, const fs::path& dir) {
  const int64_t chunk = args.chunk_kb << 10;
  auto pki = Pki::Create(dir / "pki", 1);
  Die(pki.status(), "pki");
  auto coordinator = Coordinator::Start(*pki, dir / "state", SetupFor(args, 1, args.params));
  Die(coordinator.status(), "coordinator");
  auto client = MakeClient(*pki, 0, (*coordinator)->server->port(), chunk);
  auto [session, task] = JoinAndWait(client.get(), 0);
  auto verifier = common::security::SignatureVerifier::Load(pki->dir / "ca.crt");
  Die(verifier.status(), "verifier");
  NoopTrainer trainer;
  site_agent::SiteRunner runner({SiteName(0), dir / "site", {{"knee", 1}}}, client.get(),
                                *common::security::SignatureVerifier::Load(pki->dir / "ca.crt"),
                                &trainer);
  const double mb = double(task.model_bytes()) / 1e6;

  // The raw server streams the model's bytes, taken from a first pull.
  auto first = runner.PullModel(session, task, site_agent::ExpectedStartModel(task));
  Die(first.status(), "pull model");
  auto bytes = common::base::ReadSmallFile(*first, int64_t{1} << 34);
  Die(bytes.status(), "read model");
  auto server = RawServer::Start(*pki, *bytes, chunk);
  Die(server.status(), "raw server");
  std::string into(bytes->size(), '\0');
  Die(RawDownload(*pki, (*server)->port(), &into).status(), "raw download");  // opens the channel

  // Pull and raw stream alternate (in both orders), so that a change of the machine's load
  // affects both; the ratio is taken per pair. CPU time is the whole process's (both ends of
  // each transfer run here), a measure of work that depends less on the load than wall time.
  std::vector<double> pull, raw, ratio, pull_cpu, raw_cpu, download, verify, parse;
  auto timed_pull = [&] {
    fs::remove_all(dir / "site" / "models");
    const double c0 = CpuSeconds(), t0 = Now();
    auto path = runner.PullModel(session, task, site_agent::ExpectedStartModel(task));
    Die(path.status(), "pull model");
    pull.push_back(Now() - t0);
    pull_cpu.push_back(CpuSeconds() - c0);
    return *path;
  };
  auto timed_raw = [&] {
    const double c0 = CpuSeconds(), t0 = Now();
    Die(RawDownload(*pki, (*server)->port(), &into).status(), "raw download");
    raw.push_back(Now() - t0);
    raw_cpu.push_back(CpuSeconds() - c0);
  };
  for (int r = 0; r < args.repeats; ++r) {
    fs::path path;
    if (r % 2 == 0) {
      path = timed_pull();
      timed_raw();
    } else {
      timed_raw();
      path = timed_pull();
    }
    ratio.push_back(raw.back() / pull.back());
    // Its parts, on the file just pulled (page cache warm, as it is right after a download).
    double t0 = Now();
    Die(verifier->VerifyFile(path), "verify");
    verify.push_back(Now() - t0);
    t0 = Now();
    auto file = tensors::SafetensorsFile::Open(path);
    Die(file.status(), "parse");
    parse.push_back(Now() - t0);
    t0 = Now();
    Die(client
            ->DownloadModel(session, task.round(), task.model_digest(), task.model_bytes(),
                            dir / "download.safetensors")
            .status(),
        "download");
    download.push_back(Now() - t0);
  }
  if (into != *bytes) Die(absl::DataLossError("raw download corrupted the bytes"), "raw");

  nlohmann::json out = {{"model_mb", mb},
                        {"chunk_kb", args.chunk_kb},
                        {"pull_mb_s", mb / Median(pull)},
                        {"pull_cpu_s", Median(pull_cpu)},
                        {"download_only_mb_s", mb / Median(download)},
                        {"verify_signature_s", Median(verify)},
                        {"parse_digest_s", Median(parse)},
                        {"raw_grpc_tls_mb_s", mb / Median(raw)},
                        {"raw_cpu_s", Median(raw_cpu)},
                        {"pull_vs_raw", Median(ratio)},
                        {"pull_vs_raw_each", ratio}};
  std::printf(
      "transfer: %.1f MB model, %lld KiB chunks, %d pulls and raw streams alternating\n"
      "  pull (download + transfer SHA-256 + signature + parse/digest)  %7.1f MB/s  (%.3f CPU s)\n"
      "  download only (stream + transfer SHA-256 + cache file write)  %7.1f MB/s\n"
      "    for scale, on the same file: SHA-256 + signature %.3f s, open + content digest %.3f s\n"
      "  raw gRPC server stream, same mutual TLS, same chunks          %7.1f MB/s  (%.3f CPU s)\n"
      "  pull / raw = %.0f %% (median of the pairs:",
      mb, (long long)args.chunk_kb, args.repeats, mb / Median(pull), Median(pull_cpu),
      mb / Median(download), Median(verify), Median(parse), mb / Median(raw), Median(raw_cpu),
      100 * Median(ratio));
  for (double x : ratio) std::printf(" %.0f", 100 * x);
  std::printf(" %%)   (target >= 80 %%)\n");
  (*coordinator)->server->Shutdown();
  return out;
}

// ---------------------------------------------------------------------------------------- wire

nlohmann::json Wire(const Args& args, const fs::path& dir) {
  const int64_t chunk = args.chunk_kb << 10;
  auto pki = Pki::Create(dir / "pki", 1);
  Die(pki.status(), "pki");
  auto coordinator = Coordinator::Start(*pki, dir / "state", SetupFor(args, 1, args.params));
  Die(coordinator.status(), "coordinator");
  auto proxy = CountingProxy::Start((*coordinator)->server->port());
  Die(proxy.status(), "proxy");
  auto client = MakeClient(*pki, 0, (*proxy)->port(), chunk);
  auto total = [&] { return (*proxy)->up() + (*proxy)->down(); };

  auto [session, task] = JoinAndWait(client.get(), 0);
  const int64_t control_before = total();
  auto verifier = common::security::SignatureVerifier::Load(pki->dir / "ca.crt");
  NoopTrainer trainer;
  site_agent::SiteRunner runner({SiteName(0), dir / "site", {{"knee", 1}}}, client.get(),
                                std::move(*verifier), &trainer);
  const int64_t down0 = (*proxy)->down(), up0 = (*proxy)->up();
  auto path = runner.PullModel(session, task, site_agent::ExpectedStartModel(task));
  Die(path.status(), "pull");
  const int64_t download = (*proxy)->down() - down0 + (*proxy)->up() - up0;

  SharedUpdate update(args.params);
  v1::UploadHeader header;
  header.set_session_id(session);
  header.set_round(task.round());
  header.set_phase(task.phase());
  header.set_num_samples(1);
  const int64_t before_upload = total();
  auto uploaded = client->UploadUpdate(header, update.encoding);
  Die(uploaded.status(), "upload");
  const int64_t upload = total() - before_upload;

  const int64_t before_tail = total();
  v1::MetricsReport report;
  report.set_site(SiteName(0));
  report.set_round(task.round());
  (*report.mutable_values())["loss"] = 0.5;
  Die(client->ReportMetrics(report), "metrics");
  auto done = client->GetTask(session, task.round());
  Die(done.status(), "get task");
  const int64_t control = control_before + (total() - before_tail);
  const double model = double(task.model_bytes()), upd = double(update.encoding.total_size);
  nlohmann::json out = {
      {"model_bytes", task.model_bytes()}, {"update_bytes", update.encoding.total_size},
      {"download_wire_bytes", download},   {"upload_wire_bytes", upload},
      {"control_wire_bytes", control},     {"round_wire_bytes", download + upload + control}};
  std::printf(
      "wire (TCP payload per site per round, TLS + HTTP/2 + protobuf included):\n"
      "  download %lld B = %.4f x model file (%lld B)\n"
      "  upload   %lld B = %.4f x update file (%lld B)\n"
      "  control  %lld B (TLS handshake, join, task polls, metrics)\n"
      "  round    %lld B = %.4f x model size\n",
      (long long)download, double(download) / model, (long long)task.model_bytes(),
      (long long)upload, double(upload) / upd, (long long)update.encoding.total_size,
      (long long)control, (long long)(download + upload + control),
      double(download + upload + control) / model);
  client.reset();
  (*coordinator)->server->Shutdown();
  return out;
}

// --------------------------------------------------------------------------------------- round

nlohmann::json Rounds(const Args& args, const fs::path& dir, int sites, int64_t params) {
  const int64_t chunk = args.chunk_kb << 10;
  auto pki = Pki::Create(dir / "pki", sites);
  Die(pki.status(), "pki");
  auto coordinator =
      Coordinator::Start(*pki, dir / "state", SetupFor(args, sites, params, args.rounds));
  Die(coordinator.status(), "coordinator");
  std::vector<std::unique_ptr<NoopTrainer>> trainers;
  std::vector<std::unique_ptr<site_agent::CoordinatorClient>> clients;
  std::vector<std::jthread> threads;
  for (int i = 0; i < sites; ++i) {
    trainers.push_back(std::make_unique<NoopTrainer>());
    clients.push_back(MakeClient(*pki, i, (*coordinator)->server->port(), chunk));
  }
  const double t0 = Now(), cpu0 = CpuSeconds();
  for (int i = 0; i < sites; ++i) {
    threads.emplace_back([&, i] {
      site_agent::SiteRunner runner({SiteName(i), dir / SiteName(i), {{"knee", 1}}},
                                    clients[size_t(i)].get(),
                                    *common::security::SignatureVerifier::Load(pki->dir / "ca.crt"),
                                    trainers[size_t(i)].get());
      Die(runner.Run(), SiteName(i));
    });
  }
  threads.clear();  // joins
  const double wall = Now() - t0, cpu = CpuSeconds() - cpu0;
  auto log = std::ifstream(dir / "state" / "rounds.jsonl");
  std::vector<double> durations;
  std::string line;
  while (std::getline(log, line)) {
    auto json = nlohmann::json::parse(line);
    durations.push_back(json["finished_unix_s"].get<double>() -
                        json["opened_unix_s"].get<double>());
  }
  double train = 0;
  for (const auto& t : trainers) train = std::max(train, t->train_seconds.load());
  const double train_per_round = train / args.rounds;
  std::vector<double> overhead;
  for (double d : durations) overhead.push_back(d - train_per_round);
  const double mean =
      std::accumulate(overhead.begin(), overhead.end(), 0.0) / double(overhead.size());
  nlohmann::json out = {{"sites", sites},
                        {"params", params},
                        {"rounds", args.rounds},
                        {"round_seconds", durations},
                        {"train_seconds_per_round", train_per_round},
                        {"overhead_mean_s", mean},
                        {"wall_s", wall},
                        {"cpu_s", cpu}};
  std::printf("round: %d sites, %.1f M params, %d rounds: overhead per round", sites,
              double(params) / 1e6, args.rounds);
  for (double o : overhead) std::printf(" %.3f", o);
  std::printf(
      " s (mean %.3f s; local training %.4f s/round; wall %.2f s, CPU %.2f s of coordinator and "
      "sites, incl. join + final pull)\n",
      mean, train_per_round, wall, cpu);
  (*coordinator)->server->Shutdown();
  return out;
}

// ----------------------------------------------------------------------------------- aggregate

nlohmann::json Aggregate(const Args& args) {
  namespace agg = common::aggregation;
  const int64_t n = args.agg_floats;
  constexpr int64_t kTensor = 1 << 20;
  std::vector<float> start(size_t(n), 0.25f);
  // One buffer per update: a batched fold reads all of them in one pass, and alternating two
  // buffers would let later updates of a batch come from cache.
  std::vector<std::vector<float>> buffers;
  for (int u = 0; u < args.agg_updates; ++u) buffers.emplace_back(size_t(n), 1.f + float(u));
  auto views_of = [&](const std::vector<float>& values) {
    std::vector<agg::TensorView> views;
    for (int64_t done = 0, i = 0; done < n; ++i) {
      const int64_t k = std::min(kTensor, n - done);
      views.push_back(
          {absl::StrCat("t", i), {k}, std::span<const float>(values.data() + done, size_t(k))});
      done += k;
    }
    return views;
  };
  std::vector<agg::SharedTensor> shared;
  for (auto& v : views_of(start)) shared.push_back({v, {agg::Scope::kGlobal, ""}});
  std::vector<std::vector<agg::TensorView>> updates;
  for (const auto& b : buffers) updates.push_back(views_of(b));
  const std::vector<std::string> joints = {"knee"};

  // Three ways of running the same aggregation:
  //   streamed   what the coordinator does: values checked while the upload arrived
  //              (ValueCheck::kAlreadyChecked), updates folded in batches of 8
  //   in-memory  updates already in memory: Add's finite check reads each update once more
  //   one-by-one each update folded as it is added (batch 1), with the finite check: the
  //              previous implementation's memory traffic
  struct Variant {
    const char* name;
    agg::ValueCheck check;
    int batch;
  };
  const Variant variants[] = {{"streamed", agg::ValueCheck::kAlreadyChecked, 8},
                              {"in-memory", agg::ValueCheck::kCheck, 8},
                              {"one-by-one", agg::ValueCheck::kCheck, 1}};
  std::vector<std::vector<double>> add_s(std::size(variants));
  std::vector<double> probe_s;
  std::vector<std::vector<float>> recycled;
  for (int r = 0; r < args.repeats; ++r) {
    for (size_t v = 0; v < std::size(variants); ++v) {
      // Accumulators recycled from the previous run, as the coordinator does between rounds.
      agg::FoldOptions fold;
      fold.batch = variants[v].batch;
      agg::ScopedFedAvg fedavg(shared, {}, fold, std::move(recycled));
      double t0 = Now();
      for (int u = 0; u < args.agg_updates; ++u) {
        Die(fedavg.Add(SiteName(u), joints, updates[size_t(u)], 1.0, variants[v].check), "add");
      }
      fedavg.Flush();
      add_s[v].push_back(Now() - t0);
      recycled = fedavg.Finalize();
      if (recycled[0][0] != 0.5f * float(args.agg_updates + 1)) {
        Die(absl::InternalError("wrong average"), variants[v].name);
      }
    }
    // The probe: read the same floats the same number of times, 2 threads, nothing else. Sixteen
    // independent partial sums so that it is bound by memory, not by the latency of one add chain.
    double t0 = Now();
    double sink = 0;
    auto sum = [](const float* p, int64_t begin, int64_t end) {
      float lanes[16] = {};
      int64_t i = begin;
      for (; i + 16 <= end; i += 16) {
        for (int j = 0; j < 16; ++j) lanes[j] += p[i + j];
      }
      for (; i < end; ++i) lanes[0] += p[i];
      return std::accumulate(std::begin(lanes), std::end(lanes), 0.0);
    };
    for (int u = 0; u < args.agg_updates; ++u) {
      const float* p = buffers[size_t(u)].data();
      double other_part = 0;
      std::thread other([&] { other_part = sum(p, n / 2, n); });
      const double mine = sum(p, 0, n / 2);
      other.join();
      sink += mine + other_part;
    }
    probe_s.push_back(Now() - t0);
    if (sink == -1) std::printf("%f", sink);  // keeps the probe from being optimized away
  }
  const double gb = double(args.agg_updates) * double(n) * 4 / 1e9;
  const double probe_gbs = gb / Median(probe_s);
  std::printf("aggregate: %d updates x %.0f M floats (%.2f GB of updates)\n", args.agg_updates,
              double(n) / 1e6, gb);
  nlohmann::json out = {{"updates", args.agg_updates}, {"floats", n}, {"probe_gb_s", probe_gbs}};
  const char* what[] = {"(checked on arrival, batches of 8)", "(finite check + batches of 8)",
                        "(finite check + one by one)"};
  for (size_t v = 0; v < std::size(variants); ++v) {
    const double gbs = gb / Median(add_s[v]);
    std::printf("  ScopedFedAvg %-10s %-36s %6.2f GB/s of updates = %3.0f %% of the probe\n",
                variants[v].name, what[v], gbs, 100 * gbs / probe_gbs);
    out[variants[v].name] = {{"gb_s", gbs}, {"ratio", gbs / probe_gbs}};
  }
  std::printf(
      "  read-only probe (sum, 2 threads)                             %6.2f GB/s\n"
      "  target: the coordinator's aggregation (streamed) >= 70 %% of the probe\n",
      probe_gbs);
  out["fedavg_gb_s"] = out["streamed"]["gb_s"];
  out["ratio"] = out["streamed"]["ratio"];
  return out;
}

// ----------------------------------------------------------------------------------------- rss

// The coordinator alone, in this (child) process: prints its port, serves one round for
// `child_sites` sites, prints its peak RSS.
int RssChild(const Args& args) {
  const fs::path dir = args.dir;
  Pki pki;
  pki.dir = dir / "pki";
  auto revocations =
      common::security::RevocationList::Load(pki.dir / "crl.pem", pki.dir / "ca.crt");
  Die(revocations.status(), "crl");
  pki.revocations = *revocations;
  auto credentials = common::security::LoadServerCredentials(
      pki.dir / "ca.crt", pki.dir / "server.crt", pki.dir / "server.key", pki.revocations);
  Die(credentials.status(), "server credentials");
  pki.server_credentials = *credentials;
  auto coordinator =
      Coordinator::Start(pki, dir / "state", SetupFor(args, args.child_sites, args.params));
  Die(coordinator.status(), "coordinator");
  AnonRssSampler anon;
  std::printf("PORT %d %.1f\n", (*coordinator)->server->port(), PeakRssMb());
  std::fflush(stdout);
  while ((*coordinator)->job->finished_rounds() < 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::printf("HWM %.1f %.1f\n", PeakRssMb(), anon.peak_mb());
  std::fflush(stdout);
  (*coordinator)->server->Shutdown();
  return 0;
}

nlohmann::json Rss(const Args& args, const fs::path& dir, const std::string& self) {
  nlohmann::json out = nlohmann::json::array();
  const int max_sites = std::ranges::max(IntList(args.rss_sites));
  auto pki = Pki::Create(dir / "pki", max_sites);
  Die(pki.status(), "pki");
  SharedUpdate update(args.params);
  for (int sites : IntList(args.rss_sites)) {
    const fs::path run = dir / absl::StrCat("rss", sites);
    fs::create_directories(run);
    fs::create_directory_symlink(dir / "pki", run / "pki");
    const std::string command =
        absl::StrCat(self, " --mode rss-child --dir ", run.string(), " --child-sites ", sites,
                     " --params ", args.params, " --chunk-kb ", args.chunk_kb, " --window-kb ",
                     args.window_kb, " --max-transfers ", args.max_transfers);
    FILE* child = ::popen(command.c_str(), "r");
    int port = 0;
    double start_mb = 0, hwm_mb = 0, anon_mb = 0;
    // Line by line: a scanf format ending in whitespace would wait for the next line.
    char line[256];
    if (!child || !std::fgets(line, sizeof(line), child) ||
        std::sscanf(line, "PORT %d %lf", &port, &start_mb) != 2) {
      Die(absl::InternalError("child did not start"), command);
    }
    {
      std::vector<std::jthread> threads;
      for (int i = 0; i < sites; ++i) {
        threads.emplace_back([&, i] {
          auto client = MakeClient(*pki, i, port, args.chunk_kb << 10);
          auto [session, task] = JoinAndWait(client.get(), i);
          const fs::path file = run / absl::StrCat("site", i, ".safetensors");
          Die(client
                  ->DownloadModel(session, task.round(), task.model_digest(), task.model_bytes(),
                                  file)
                  .status(),
              "download");
          fs::remove(file);
          v1::UploadHeader header;
          header.set_session_id(session);
          header.set_round(task.round());
          header.set_num_samples(1);
          Die(client->UploadUpdate(header, update.encoding).status(), "upload");
        });
      }
    }
    if (!std::fgets(line, sizeof(line), child) ||
        std::sscanf(line, "HWM %lf %lf", &hwm_mb, &anon_mb) != 2) {
      Die(absl::InternalError("no HWM"), command);
    }
    ::pclose(child);
    std::printf(
        "rss: %3d sites, %.1f M params: coordinator peak RSS %.0f MB (%.0f MB at start), peak "
        "anonymous %.0f MB\n",
        sites, double(args.params) / 1e6, hwm_mb, start_mb, anon_mb);
    out.push_back({{"sites", sites},
                   {"peak_rss_mb", hwm_mb},
                   {"start_rss_mb", start_mb},
                   {"peak_anon_mb", anon_mb}});
    fs::remove_all(run);
  }
  return out;
}

}  // namespace
}  // namespace fedjoint::bench

int main(int argc, char** argv) {
  using namespace fedjoint::bench;
  Args args;
  CLI::App app("fedjoint federation benchmarks");
  app.add_option("--mode", args.mode, "all|transfer|wire|round|aggregate|rss");
  app.add_option("--params", args.params, "float32 parameters of the model");
  app.add_option("--chunk-kb", args.chunk_kb, "transfer chunk size");
  app.add_option("--repeats", args.repeats);
  app.add_option("--sites", args.sites, "sites of the round mode");
  app.add_option("--rounds", args.rounds, "rounds of the round mode");
  app.add_option("--light-sites", args.light_sites, "e.g. 32,100: more round runs, small model");
  app.add_option("--light-params", args.light_params);
  app.add_option("--agg-floats", args.agg_floats);
  app.add_option("--agg-updates", args.agg_updates);
  app.add_option("--rss-sites", args.rss_sites);
  app.add_option("--json", args.json_path, "also write the results here");
  app.add_option("--log-level", args.log_level, "e.g. info: the coordinator's and sites' logs");
  app.add_option("--window-kb", args.window_kb, "coordinator's HTTP/2 stream window, 0 = gRPC's");
  app.add_option("--max-transfers", args.max_transfers, "coordinator's concurrent transfers");
  app.add_option("--dir", args.dir)->group("");
  app.add_option("--child-sites", args.child_sites)->group("");
  CLI11_PARSE(app, argc, argv);
  (void)fedjoint::common::log::Setup({args.log_level, fedjoint::common::log::Format::kHuman});
  if (args.mode == "rss-child") return RssChild(args);

  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("fedjoint_federation_bench_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  nlohmann::json results;
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) == 3) results["loadavg"] = {load[0], load[1], load[2]};
  std::printf("load average %.2f %.2f %.2f, %u cores\n", load[0], load[1], load[2],
              std::thread::hardware_concurrency());
  const bool all = args.mode == "all";
  if (all || args.mode == "transfer") results["transfer"] = Transfer(args, dir / "transfer");
  if (all || args.mode == "wire") results["wire"] = Wire(args, dir / "wire");
  if (all || args.mode == "round") {
    results["round"] = nlohmann::json::array();
    results["round"].push_back(Rounds(args, dir / "round", args.sites, args.params));
    for (int sites : IntList(args.light_sites)) {
      results["round"].push_back(
          Rounds(args, dir / absl::StrCat("round", sites), sites, args.light_params));
    }
  }
  if (all || args.mode == "aggregate") results["aggregate"] = Aggregate(args);
  if (all || args.mode == "rss")
    results["rss"] =
        Rss(args, dir / "rss", std::filesystem::read_symlink("/proc/self/exe").string());
  std::filesystem::remove_all(dir);
  if (!args.json_path.empty()) {
    auto s = fedjoint::common::base::WriteFileAtomically(args.json_path, results.dump(2) + "\n");
    if (!s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  return 0;
}
