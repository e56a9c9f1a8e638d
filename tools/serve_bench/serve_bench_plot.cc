#include <cstdlib>
#include <fstream>
#include <vector>

#include "serve_bench_report.h"

namespace kvpool::cli {
namespace {

// serve-bars.dat: one row per (phase, percentile), one column per system.
void WriteBars(const ServeBenchReport& r, const std::string& path) {
  std::ofstream data(path);
  data << "group";
  for (const ServeBenchSystemRun& s : r.systems) data << " \"" << s.name << "\"";
  data << "\n";
  const size_t phases = r.systems.empty() ? 0 : r.systems.front().phases.size();
  for (size_t i = 0; i < phases; ++i) {
    for (const bool p90 : {false, true}) {
      data << "\"" << r.systems.front().phases[i].phase << (p90 ? " p90" : " p50") << "\"";
      for (const ServeBenchSystemRun& s : r.systems) {
        const ServeBenchPhase* p = i < s.phases.size() ? &s.phases[i] : nullptr;
        data << " " << (p == nullptr ? 0 : p90 ? p->TtftP90() : p->TtftP50());
      }
      data << "\n";
    }
  }
}

bool AnyAnswered(const ServeBenchSystemRun& s) {
  for (const ServeBenchPhase& p : s.phases) {
    if (!p.Ttfts().empty()) return true;
  }
  return false;
}

// The systems with a request answered (gnuplot fails on an empty block).
std::vector<const ServeBenchSystemRun*> Answered(const ServeBenchReport& r) {
  std::vector<const ServeBenchSystemRun*> v;
  for (const ServeBenchSystemRun& s : r.systems) {
    if (AnyAnswered(s)) v.push_back(&s);
  }
  return v;
}

// serve-requests.dat: one block per answered system, "trace index, TTFT"
// per request answered.
void WriteRequests(const ServeBenchReport& r, const std::string& path) {
  std::ofstream data(path);
  for (const ServeBenchSystemRun* system : Answered(r)) {
    const ServeBenchSystemRun& s = *system;
    data << "# " << s.name << "\n";
    for (const ServeBenchPhase& p : s.phases) {
      for (const ServeBenchRequestRecord& q : p.requests) {
        if (q.sample.ok()) data << q.index << " " << q.sample.ttft_seconds << "\n";
      }
    }
    data << "\n\n";
  }
}

uint32_t RestartIndex(const ServeBenchReport& r) {
  for (const ServeBenchSystemRun& s : r.systems) {
    if (s.phases.size() > 1 && !s.phases[1].requests.empty()) return s.phases[1].requests[0].index;
  }
  return 0;
}

std::string BarsPlot(const ServeBenchReport& r, const std::string& bars) {
  std::string plot;
  for (size_t i = 0; i < r.systems.size(); ++i) {
    plot += (i ? ", '' using " : "'" + bars + "' using ") + std::to_string(i + 2) +
            (i ? "" : ":xtic(1)") + " title columnheader(" + std::to_string(i + 2) + ")";
  }
  return plot;
}

std::string RequestsPlot(const ServeBenchReport& r, const std::string& requests) {
  const std::vector<const ServeBenchSystemRun*> answered = Answered(r);
  std::string plot;
  for (size_t i = 0; i < answered.size(); ++i) {
    plot += (i ? ", " : "") + ("'" + requests + "' index " + std::to_string(i)) +
            " using 1:2 with points pt 7 ps 0.6 title '" + answered[i]->name + "'";
  }
  return plot;
}

}  // namespace

bool PlotServeBench(const ServeBenchReport& r, const std::string& dir) {
  if (Answered(r).empty() || std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
  const std::string bars = dir + "/serve-bars.dat", requests = dir + "/serve-requests.dat";
  WriteBars(r, bars);
  WriteRequests(r, requests);
  const std::string restart = std::to_string(RestartIndex(r));
  const std::string title = r.config.value("title", std::string("kvpool bench serve"));
  std::ofstream gp(dir + "/serve.gp");
  gp << "set terminal pngcairo size 1100,820 font ',10'\nset output '" << dir << "/serve.png'\n"
     << "set multiplot layout 2,1 title \"" << title << "\" noenhanced\n"
     << "set style data histograms\nset style histogram clustered gap 1\n"
     << "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset grid ytics\n"
     << "set key top left\nset ylabel 'TTFT (s)'\nset yrange [0:*]\n"
     << "set title 'TTFT p50 and p90, before and after the restart of both servers'\n"
     << "plot " << BarsPlot(r, bars) << "\n"
     << "set style data points\nset grid xtics ytics\nset autoscale\nset key outside right top\n"
     << "set logscale y\nset format y '%g'\nset xlabel 'request (trace order)'\n"
     << "set arrow 1 from " << restart << ", graph 0 to " << restart
     << ", graph 1 nohead dt 2 lc rgb 'red'\n"
     << "set label 1 'restart' at " << restart << ", graph 0.92 offset 0.5,0 tc rgb 'red'\n"
     << "set title 'TTFT of every request'\nplot " << RequestsPlot(r, requests)
     << "\nunset multiplot\n";
  gp.close();
  return std::system(("gnuplot '" + dir + "/serve.gp' 2>/dev/null").c_str()) == 0;
}

}  // namespace kvpool::cli
