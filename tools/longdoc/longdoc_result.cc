#include "longdoc_result.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "../bench_util.h"

namespace kvpool::cli {
namespace {

std::string Ratio(double num, double den) { return den > 0 ? Fixed(num / den, 2) + "x" : "-"; }

std::string K(uint64_t tokens) { return std::to_string(tokens / 1024) + "K"; }

nlohmann::json CellJson(const CellResult& c) {
  nlohmann::json work = nlohmann::json::array();
  for (const DeviceWork& w : c.work) {
    work.push_back({{"name", w.name}, {"kind", w.kind}, {"bytes_read", w.bytes_read},
                    {"busy_seconds", w.busy_seconds},
                    {"busy_fraction", c.query_wall_seconds > 0 ? w.busy_seconds / c.query_wall_seconds : 0}});
  }
  return {{"system", c.system}, {"context", c.context}, {"cached_tokens", c.cached_tokens},
          {"kv_bytes", c.kv_bytes}, {"offload_seconds", c.offload_seconds},
          {"load_seconds", c.load_seconds}, {"load_median", Median(c.load_seconds)},
          {"load_p90", Percentile(c.load_seconds, 90)}, {"ttft_seconds", c.ttft_seconds},
          {"ttft_median", Median(c.ttft_seconds)}, {"blocked_io_seconds", c.blocked_seconds},
          {"blocked_io_median", Median(c.blocked_seconds)}, {"cpu_user_seconds", c.user_seconds},
          {"cpu_system_seconds", c.system_seconds}, {"devices", work}, {"verified", c.verified}};
}

void WriteCsv(const std::vector<CellResult>& cells, const std::string& path) {
  std::ofstream out(path);
  out << "system,context,cached_tokens,kv_bytes,load_median_s,load_p90_s,ttft_median_s,"
         "blocked_io_median_s,offload_s,cpu_user_s,cpu_system_s\n";
  for (const CellResult& c : cells) {
    out << c.system << "," << c.context << "," << c.cached_tokens << "," << c.kv_bytes << ","
        << Median(c.load_seconds) << "," << Percentile(c.load_seconds, 90) << ","
        << Median(c.ttft_seconds) << "," << Median(c.blocked_seconds) << "," << c.offload_seconds
        << "," << c.user_seconds << "," << c.system_seconds << "\n";
  }
}

// gnuplot data: one block per system (context, ttft); and busy fractions.
bool Plot(const LongDocReport& r, const std::string& dir, std::vector<std::string>* written) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
  std::set<std::string> systems;
  for (const auto& c : r.cells) systems.insert(c.system);
  std::ofstream data(dir + "/ttft.dat");
  std::string plot;
  int index = 0;
  for (const auto& s : r.config["systems"]) {
    std::string name = s.get<std::string>();
    data << "# " << name << "\n";
    for (const auto& c : r.cells) {
      if (c.system == name) data << c.context << " " << Median(c.ttft_seconds) << "\n";
    }
    data << "\n\n";
    plot += std::string(index ? ", " : "") + "'" + dir + "/ttft.dat' index " +
            std::to_string(index) + " with linespoints lw 2 title '" + name + "'";
    ++index;
  }
  data.close();
  std::string title = r.config["model"].get<std::string>() + ", KV scale " +
                      r.config["scale"].dump() + ", " + r.config["compute_model"].get<std::string>();
  std::ofstream gp(dir + "/plots.gp");
  gp << "set terminal pngcairo size 900,560\nset output '" << dir << "/ttft.png'\n"
     << "set title \"TTFT vs context (" << title << ")\" noenhanced font ',10'\n"
     << "set logscale x 2\nset xlabel 'context (tokens)'\nset ylabel 'TTFT (s)'\n"
     << "set key top left\nset grid\nplot " << plot << "\n";
  // Busy fraction per device at the largest context.
  uint64_t largest = 0;
  for (const auto& c : r.cells) largest = std::max(largest, c.context);
  std::ofstream busy(dir + "/busy.dat");
  for (const auto& c : r.cells) {
    if (c.context != largest) continue;
    for (const DeviceWork& w : c.work) {
      double f = c.query_wall_seconds > 0 ? w.busy_seconds / c.query_wall_seconds : 0;
      busy << "\"" << c.system << ":" << w.name << "\" " << 100 * f << "\n";
    }
  }
  busy.close();
  gp << "reset\nset terminal pngcairo size 900,560\nset output '" << dir << "/busy.png'\n"
     << "set title \"Device busy fraction during loads at " << K(largest) << " tokens\" noenhanced\n"
     << "set style data histograms\nset style fill solid 0.8\nset boxwidth 0.8\n"
     << "set yrange [0:110]\nset ylabel 'busy %'\nset xtics rotate by -35 noenhanced font ',9'\n"
     << "set grid ytics\nplot '" << dir << "/busy.dat' using 2:xtic(1) notitle lc rgb '#3070b0'\n";
  gp.close();
  if (std::system(("gnuplot '" + dir + "/plots.gp'").c_str()) != 0) return false;
  written->push_back(dir + "/ttft.png");
  written->push_back(dir + "/busy.png");
  return true;
}

}  // namespace

const CellResult* LongDocReport::Find(const std::string& system, uint64_t context) const {
  for (const auto& c : cells) {
    if (c.system == system && c.context == context) return &c;
  }
  return nullptr;
}

void LongDocReport::PrintTable() const {
  Table t({"context", "system", "load med (s)", "load p90 (s)", "TTFT med (s)", "blocked I/O (s)",
           "CPU usr+sys (s)", "offload (s)", "load vs kvpool"});
  std::set<uint64_t> contexts;
  for (const auto& c : cells) contexts.insert(c.context);
  for (uint64_t ctx : contexts) {
    const CellResult* kv = Find("kvpool", ctx);
    for (const auto& c : cells) {
      if (c.context != ctx) continue;
      double load = Median(c.load_seconds);
      t.Add({K(ctx), c.system, Fixed(load, 4), Fixed(Percentile(c.load_seconds, 90), 4),
             Fixed(Median(c.ttft_seconds), 4), Fixed(Median(c.blocked_seconds), 4),
             Fixed(c.user_seconds + c.system_seconds, 3), Fixed(c.offload_seconds, 2),
             kv ? Ratio(load, Median(kv->load_seconds)) : "-"});
    }
  }
  std::printf("\n%s", t.Render().c_str());
  uint64_t largest = contexts.empty() ? 0 : *contexts.rbegin();
  const CellResult* kv = Find("kvpool", largest);
  if (kv == nullptr) return;
  Table s({"at " + K(largest), "retrieval", "blocked I/O", "TTFT"});
  for (const char* other : {"baseline", "pool-fs", "passthrough-only"}) {
    const CellResult* o = Find(other, largest);
    if (o == nullptr) continue;
    s.Add({std::string(other) + " / kvpool", Ratio(Median(o->load_seconds), Median(kv->load_seconds)),
           Ratio(Median(o->blocked_seconds), Median(kv->blocked_seconds)),
           Ratio(Median(o->ttft_seconds), Median(kv->ttft_seconds))});
  }
  std::printf("\nratios (higher = kvpool faster; medians of %zu cold queries):\n%s",
              kv->load_seconds.size(), s.Render().c_str());
}

std::vector<std::string> LongDocReport::Write(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::vector<std::string> written;
  nlohmann::json j{{"config", config}, {"cells", nlohmann::json::array()}};
  for (const auto& c : cells) j["cells"].push_back(CellJson(c));
  std::ofstream(dir + "/results.json") << j.dump(2) << "\n";
  written.push_back(dir + "/results.json");
  WriteCsv(cells, dir + "/results.csv");
  written.push_back(dir + "/results.csv");
  if (!Plot(*this, dir, &written)) std::fprintf(stderr, "gnuplot missing or failed: no PNG plots\n");
  return written;
}

}  // namespace kvpool::cli
