// kvpool: the command-line front end.
//   kvpool bench [pool]   time cold retrieval of a long prefix from the pool
//   kvpool bench device   extent device vs file-per-chunk vs fio, cold reads
//   kvpool bench remote   the remote tier (Redis Cluster) vs redis-benchmark, and its TTFT
//   kvpool probe          what the machine offers and what each device does
//   kvpool config         print the embedded default configuration
//   kvpool stat           live per-device and per-tenant stats of a kvpoold
//   kvpool llama          llama.cpp with its prefix KV in the pool (when built with it)
//   kvpool serve          OpenAI-compatible llama.cpp server, the pool as its prompt cache
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "bench_daemon.h"
#include "bench_device.h"
#include "bench_pool.h"
#include "bench_remote.h"
#include "bench_reopen.h"
#include "longdoc/longdoc_bench.h"
#include "config.h"
#include "default_config.h"
#include "probe.h"
#include "stat_cmd.h"
#include "workload/workload_bench.h"
#if KVPOOL_HAVE_LLAMA
#include "llama_cmd.h"
#include "serve_main.h"
#include "serve_bench/serve_bench.h"
#endif

namespace {

using namespace kvpool::cli;

void AddPoolBench(CLI::App& bench, PoolBenchOptions& o) {
  bench.add_option("--config", o.config, "pool configuration (TOML); default: embedded");
  bench.add_option("--state-dir", o.state_dir, "state directory of the default configuration");
  bench.add_option("--model", o.model, "model preset: llama-3.1-8b, qwen3-30b-a3b, gpt-oss-20b, tiny");
  bench.add_option("--scale", o.scale, "scale KV bytes per token (0, 1]")->check(CLI::Range(1e-6, 1.0));
  bench.add_option("--tokens", o.tokens, "prefix length in tokens")->check(CLI::PositiveNumber);
  bench.add_option("--repeats", o.repeats, "cold retrievals (median reported)")->check(CLI::Range(1, 1000));
  bench.add_flag("!--no-alone", o.compare_alone, "skip the fastest-device-alone comparison");
  bench.add_flag("!--no-references", o.references,
                 "skip DRAM-alone vs memcpy and extent-alone vs fio");
  bench.add_option("--json", o.json, "write results as JSON to this file");
}

void AddLongDocOptions(CLI::App& c, LongDocOptions& o, std::vector<std::string>& contexts) {
  c.add_option("--model", o.model, "model preset");
  c.add_option("--scale", o.scale, "scale KV bytes per token (0, 1]")->check(CLI::Range(1e-6, 1.0));
  c.add_option("--contexts", contexts, "context lengths, e.g. 1K 4K 16K 32K 64K 128K");
  c.add_option("--systems", o.systems, "baseline pool-fs passthrough-only kvpool");
  c.add_option("--repeats", o.repeats, "queries per document")->check(CLI::Range(1, 1000));
  c.add_option("--hit-ratio", o.hit_ratio, "fraction of the document served from cache")->check(CLI::Range(0.0, 1.0));
  c.add_option("--question-tokens", o.question_tokens, "uncached tokens per query");
  c.add_option("--dram-mib", o.dram_mib, "host memory per system (0 = 1/4 of the largest document)");
  c.add_option("--ssd-mib", o.ssd_mib, "SSD capacity per system (0 = fits the largest document)");
  c.add_option("--dir", o.dir, "where device files go");
  c.add_option("--out", o.out, "where JSON, CSV and PNG go");
  c.add_option("--gpu-tflops", o.gpu_tflops, "modelled GPU prefill TFLOP/s");
  c.add_option("--h2d-gibps", o.h2d_gibps, "modelled host-to-device GiB/s");
  c.add_flag("!--no-progress", o.progress, "no progress bar");
}

void AddWorkloadOptions(CLI::App& c, WorkloadOptions& o) {
  TraceOptions& t = o.trace;
  c.add_option("--documents", t.documents, "documents sessions are about")->capture_default_str();
  c.add_option("--doc-tokens", t.doc_tokens, "tokens per document")->capture_default_str();
  c.add_option("--turns", t.turns, "turns per session")->capture_default_str();
  c.add_option("--turn-tokens", t.turn_tokens, "tokens each turn adds")->capture_default_str();
  c.add_option("--zipf", t.zipf, "Zipf exponent of document popularity")->capture_default_str();
  c.add_option("--new-session", t.new_session, "chance a request starts a new session")->capture_default_str();
  c.add_option("--requests", t.requests, "requests in the trace")->capture_default_str();
  c.add_option("--seed", t.seed, "trace seed")->capture_default_str();
  c.add_option("--model", o.model, "model preset")->capture_default_str();
  c.add_option("--scale", o.scale, "scale KV bytes per token (0, 1]")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c.add_option("--dram-mib", o.dram_mib, "host memory per system (kvpool: 2 regions of half)")->capture_default_str();
  c.add_option("--extent-mib", o.extent_mib, "persistent capacity per system")->capture_default_str();
  c.add_option("--systems", o.systems, "kvpool partition baseline")->capture_default_str();
  c.add_option("--dir", o.dir, "where device files go")->capture_default_str();
  c.add_option("--out", o.out, "where workload.json, .csv and .png go")->capture_default_str();
  c.add_flag("!--no-progress", o.progress, "no progress bar");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvpool: one KV-cache pool over every DRAM region and SSD", "kvpool"};
  app.set_version_flag("--version", std::string(KVPOOL_VERSION));
  app.require_subcommand(1);

  PoolBenchOptions pool_bench;
  CLI::App* bench = app.add_subcommand("bench", "benchmarks (default: pool)");
  AddPoolBench(*bench, pool_bench);
  CLI::App* bench_pool = bench->add_subcommand("pool", "cold retrieval of one long prefix");
  AddPoolBench(*bench_pool, pool_bench);

  DeviceBenchOptions device_bench;
  CLI::App* bench_device = bench->add_subcommand("device", "extent vs file-per-chunk vs fio");
  bench_device->add_option("--dir", device_bench.dir, "directory for the extent file and chunk files");
  bench_device->add_option("--mib", device_bench.mib, "MiB of data per segment size")->check(CLI::Range(16, 1 << 20));
  bench_device->add_option("--sizes-kib", device_bench.sizes_kib, "segment sizes in KiB");
  bench_device->add_option("--depths", device_bench.depths, "queue depths");
  bench_device->add_option("--engine", device_bench.engine, "extent engine: uring or psync");
  bench_device->add_option("--spdk-transport", device_bench.spdk_transport,
                           "also bench the SPDK device on this SPDK transport ID (reformats it), "
                           "beside spdk_nvme_perf when found");
  bench_device->add_flag("!--bounce", device_bench.zero_copy,
                         "copy payloads through the devices' bounce buffers (zero_copy = false)");
  bench_device->add_option("--perf-seconds", device_bench.perf_seconds,
                           "seconds of each spdk_nvme_perf run")->check(CLI::Range(1, 600));
  bench_device->add_option("--repeats", device_bench.repeats, "runs per cell (median)")->check(CLI::Range(1, 100));
  bench_device->add_flag("--keep", device_bench.keep, "keep the data files");
  bench_device->add_option("--json", device_bench.json, "write results as JSON to this file");

  DaemonBenchOptions daemon_bench;
  CLI::App* bench_daemon =
      bench->add_subcommand("daemon", "the same retrieval in-process and through kvpoold, side by side");
  AddDaemonBenchOptions(*bench_daemon, daemon_bench);

  LongDocOptions longdoc;
  std::vector<std::string> contexts;
  CLI::App* bench_longdoc = bench->add_subcommand("longdoc", "long-context TTFT: kvpool vs baselines");
  AddLongDocOptions(*bench_longdoc, longdoc, contexts);

  ReopenBenchOptions reopen_bench;
  CLI::App* bench_reopen =
      bench->add_subcommand("reopen", "recovery time of a full extent of ~1M slots");
  AddReopenBenchOptions(*bench_reopen, reopen_bench);

  RemoteBenchOptions remote_bench;
  CLI::App* bench_remote =
      bench->add_subcommand("remote", "remote tier: kvpool vs redis-benchmark, and TTFT from it");
  AddRemoteBenchOptions(*bench_remote, remote_bench);

  WorkloadOptions workload;
  CLI::App* bench_workload = bench->add_subcommand("workload", "multi-turn sessions, Zipf documents, a restart");
  AddWorkloadOptions(*bench_workload, workload);

  ProbeOptions probe;
  CLI::App* probe_cmd = app.add_subcommand("probe", "machine features and device bandwidths");
  probe_cmd->add_option("--config", probe.config, "pool configuration (TOML)");
  probe_cmd->add_option("--state-dir", probe.state_dir, "state directory of the default configuration");
  probe_cmd->add_option("--mib", probe.probe_mib, "MiB written then read per device")->check(CLI::Range(1, 65536));
  probe_cmd->add_flag("!--no-measure", probe.measure, "skip device bandwidth measurement");
  probe_cmd->add_option("--json", probe.json, "write results as JSON to this file");

  std::string state_dir = ".kvpool";
  CLI::App* config = app.add_subcommand("config", "print the embedded default configuration");
  config->add_option("--state-dir", state_dir, "state directory to put in it");

  StatOptions stat;
  CLI::App* stat_cmd = app.add_subcommand("stat", "live per-device and per-tenant stats of a kvpoold");
  stat_cmd->add_option("--socket", stat.socket, "kvpoold's socket")->capture_default_str();
  stat_cmd->add_flag("--json", stat.json, "print the daemon's JSON");
  stat_cmd->add_option("--timeout-ms", stat.timeout_ms, "longest wait for the daemon")->check(CLI::Range(1, 600000));

  std::vector<std::string> args(argv + 1, argv + argc);
#if KVPOOL_HAVE_LLAMA
  LlamaCommand llama(app);
  std::unique_ptr<ServeBenchCommand> serve_bench = AddServeBench(*bench);
  kvpool::serve::ServeOptions serve;
  CLI::App* serve_cmd = kvpool::serve::AddServeCommand(app, serve);
  if (!args.empty() && args[0] == "serve") args = kvpool::serve::LlamaServerFlagAliases(args);
#endif

  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
#if KVPOOL_HAVE_LLAMA
  if (llama.Parsed()) return llama.Run();
  if (serve_bench->Parsed()) return serve_bench->Run();
  if (serve_cmd->parsed()) return kvpool::serve::RunServe(serve);
#endif
  if (bench_device->parsed()) return RunDeviceBench(device_bench);
  if (bench_daemon->parsed()) return RunDaemonBench(daemon_bench);
  if (bench_reopen->parsed()) return RunBenchReopen(reopen_bench);
  if (bench_remote->parsed()) {
#if KVPOOL_HAVE_LLAMA
    return RunRemoteBench(remote_bench, &RunRemoteTtft, "");
#else
    return RunRemoteBench(remote_bench, nullptr,
                          "kvpool was built without llama.cpp: run scripts/setup_llama.sh, then "
                          "configure the build again");
#endif
  }
  if (bench_longdoc->parsed()) {
    if (!contexts.empty()) {
      longdoc.contexts.clear();
      for (const std::string& c : contexts) {
        uint64_t n = 0;
        if (!ParseTokenCount(c, &n)) {
          std::fprintf(stderr, "kvpool bench longdoc: --contexts: '%s' is not a token count (e.g. 16K)\n", c.c_str());
          return 2;
        }
        longdoc.contexts.push_back(n);
      }
    }
    return RunLongDocBench(longdoc);
  }
  if (bench_workload->parsed()) return RunWorkloadBench(workload);
  if (bench->parsed()) return RunPoolBench(pool_bench);
  if (probe_cmd->parsed()) return RunProbe(probe);
  if (stat_cmd->parsed()) return RunStat(stat);
  if (config->parsed()) {
    std::fputs(DefaultConfigToml(state_dir).c_str(), stdout);
    return 0;
  }
  return 0;
}
