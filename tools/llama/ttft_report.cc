#include "ttft_report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "bench_util.h"

namespace kvpool::cli {
namespace {

double MedianOf(const std::vector<WarmSample>& s, double WarmSample::*field) {
  std::vector<double> v;
  for (const WarmSample& x : s) v.push_back(x.*field);
  return v.empty() ? 0 : Median(v);
}

std::string Sec(double s) { return s >= 10 ? Fixed(s, 1) : s >= 1 ? Fixed(s, 2) : Fixed(s, 3); }
std::string Ratio(double a, double b) { return b > 0 ? Fixed(a / b, 1) + "x" : "-"; }

nlohmann::json SampleJson(const WarmSample& s) {
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& d : s.sources) {
    sources.push_back(
        {{"device", d.name}, {"kind", d.kind}, {"bytes", d.bytes}, {"segments", d.segments}});
  }
  return {{"ttft_s", s.ttft},
          {"load_s", s.load},
          {"retrieve_s", s.retrieve},
          {"assemble_s", s.assemble},
          {"assembled_bytes", s.assembled_bytes},
          {"set_state_s", s.restore},
          {"decode_s", s.decode},
          {"restored_tokens", s.restored_tokens},
          {"computed_tokens", s.computed_tokens},
          {"sources", sources},
          {"fallback", s.fallback}};
}

// Systems in the order of the first document.
std::vector<std::string> SystemNames(const TtftReport& r) {
  std::vector<std::string> names;
  if (!r.contexts.empty()) {
    for (const SystemResult& s : r.contexts.front().systems) names.push_back(s.system);
  }
  return names;
}

bool Plot(const TtftReport& r, const std::string& dir) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
  std::vector<std::string> series = SystemNames(r);
  series.insert(series.begin(), "cold");
  std::ofstream data(dir + "/llama-ttft.dat");
  for (const std::string& s : series) {
    data << "# " << s << "\n";
    for (const ContextResult& c : r.contexts) {
      double ttft = 0, load = 0;
      if (s == "cold") {
        ttft = Median(c.cold_ttft);
      } else if (const SystemResult* x = c.Find(s)) {
        ttft = MedianOf(x->samples, &WarmSample::ttft);
        load = MedianOf(x->samples, &WarmSample::load);
      } else {
        continue;
      }
      data << c.context << " " << ttft << " " << load << "\n";
    }
    data << "\n\n";
  }
  data.close();
  std::string ttft_plot, load_plot;
  for (size_t i = 0; i < series.size(); ++i) {
    std::string src = "'" + dir + "/llama-ttft.dat' index " + std::to_string(i);
    std::string title = series[i] == "cold" ? "cold (full prefill)" : series[i];
    ttft_plot += (i ? ", " : "") + src + " using 1:2 with linespoints lw 2 lt " +
                 std::to_string(i + 1) + " title '" + title + "'";
    if (i > 0)
      load_plot += (i > 1 ? ", " : "") + src + " using 1:3 with linespoints lw 2 lt " +
                   std::to_string(i + 1) + " title '" + title + "'";
  }
  const std::string title = r.config.value("model", std::string("model")) +
                            " - RANDOM weights (real shape and compute), llama.cpp CPU, threads=" +
                            std::to_string(r.config.value("threads", 0));
  std::ofstream gp(dir + "/llama-ttft.gp");
  gp << "set terminal pngcairo size 1200,520 font ',10'\nset output '" << dir
     << "/llama-ttft.png'\n"
     << "set multiplot layout 1,2 title \"" << title << "\" noenhanced\n"
     << "set logscale xy 2\nset grid\nset key top left\nset xlabel 'document tokens (cached "
        "prefix)'\n"
     << "set ylabel 'TTFT (s)'\nset title 'TTFT: cold prefill vs warm from each system'\nplot "
     << ttft_plot
     << "\nset ylabel 'load time (s)'\nset title 'load time alone (pool read + assemble + set "
        "state)'\nplot "
     << load_plot << "\nunset multiplot\n";
  gp.close();
  return std::system(("gnuplot '" + dir + "/llama-ttft.gp'").c_str()) == 0;
}

}  // namespace

const SystemResult* ContextResult::Find(const std::string& system) const {
  for (const SystemResult& s : systems) {
    if (s.system == system) return &s;
  }
  return nullptr;
}

std::string TtftReport::Table() const {
  std::vector<std::string> header = {"tokens", "cold TTFT"};
  const std::vector<std::string> names = SystemNames(*this);
  for (const std::string& n : names) {
    header.push_back(n + " TTFT");
    header.push_back(n + " load");
  }
  header.insert(header.end(), {"cold/kvpool TTFT", "file/kvpool load", "file/large-dram load"});
  cli::Table t(header);
  for (const ContextResult& c : contexts) {
    std::vector<std::string> row = {std::to_string(c.context), Sec(Median(c.cold_ttft))};
    for (const std::string& n : names) {
      const SystemResult* s = c.Find(n);
      row.push_back(s ? Sec(MedianOf(s->samples, &WarmSample::ttft)) : "-");
      row.push_back(s ? Sec(MedianOf(s->samples, &WarmSample::load)) : "-");
    }
    const SystemResult* kv = c.Find("kvpool");
    const SystemResult* file = c.Find("file");
    const double kv_ttft = kv ? MedianOf(kv->samples, &WarmSample::ttft) : 0;
    const double kv_load = kv ? MedianOf(kv->samples, &WarmSample::load) : 0;
    row.push_back(Ratio(Median(c.cold_ttft), kv_ttft));
    const double file_load = file ? MedianOf(file->samples, &WarmSample::load) : 0;
    const SystemResult* big = c.Find("kvpool-large-dram");
    row.push_back(file ? Ratio(file_load, kv_load) : "-");
    row.push_back(file && big ? Ratio(file_load, MedianOf(big->samples, &WarmSample::load)) : "-");
    t.Add(row);
  }
  return t.Render();
}

std::string TtftReport::SplitTable() const {
  cli::Table t({"tokens", "system", "TTFT", "pool read", "assemble", "set state", "decode", "other",
                "read % of TTFT"});
  for (const ContextResult& c : contexts) {
    for (const SystemResult& s : c.systems) {
      const double ttft = MedianOf(s.samples, &WarmSample::ttft);
      const double read = MedianOf(s.samples, &WarmSample::retrieve);
      const double assemble = MedianOf(s.samples, &WarmSample::assemble);
      const double restore = MedianOf(s.samples, &WarmSample::restore);
      const double decode = MedianOf(s.samples, &WarmSample::decode);
      const double other = std::max(0.0, ttft - read - assemble - restore - decode);
      t.Add({std::to_string(c.context), s.system, Sec(ttft), Sec(read), Sec(assemble), Sec(restore),
             Sec(decode), Sec(other), ttft > 0 ? Fixed(100 * read / ttft, 0) + "%" : "-"});
    }
  }
  return t.Render();
}

nlohmann::json TtftReport::ToJson() const {
  nlohmann::json cells = nlohmann::json::array();
  for (const ContextResult& c : contexts) {
    nlohmann::json systems = nlohmann::json::array();
    for (const SystemResult& s : c.systems) {
      nlohmann::json samples = nlohmann::json::array();
      for (const WarmSample& w : s.samples) samples.push_back(SampleJson(w));
      systems.push_back({{"system", s.system},
                         {"devices", s.devices},
                         {"engine", s.engine},
                         {"store_s", s.store_seconds},
                         {"logits_match_first_system", s.logits_match},
                         {"median_ttft_s", MedianOf(s.samples, &WarmSample::ttft)},
                         {"median_load_s", MedianOf(s.samples, &WarmSample::load)},
                         {"median_retrieve_s", MedianOf(s.samples, &WarmSample::retrieve)},
                         {"median_assemble_s", MedianOf(s.samples, &WarmSample::assemble)},
                         {"median_set_state_s", MedianOf(s.samples, &WarmSample::restore)},
                         {"median_decode_s", MedianOf(s.samples, &WarmSample::decode)},
                         {"samples", samples}});
    }
    cells.push_back({{"context_tokens", c.context},
                     {"prompt_tokens", c.prompt_tokens},
                     {"kv_bytes", c.kv_bytes},
                     {"cold_ttft_s", c.cold_ttft},
                     {"median_cold_ttft_s", Median(c.cold_ttft)},
                     {"systems", systems}});
  }
  return {{"config", config}, {"results", cells}};
}

std::vector<std::string> TtftReport::Write(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::vector<std::string> written;
  std::ofstream(dir + "/llama-ttft.json") << ToJson().dump(2) << "\n";
  written.push_back(dir + "/llama-ttft.json");
  if (Plot(*this, dir)) {
    written.push_back(dir + "/llama-ttft.png");
  } else {
    std::fprintf(stderr, "gnuplot missing or failed: no PNG plot\n");
  }
  return written;
}

}  // namespace kvpool::cli
