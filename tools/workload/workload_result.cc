#include "workload_result.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../bench_util.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

std::string Ratio(double num, double den) { return den > 0 ? Fixed(num / den, 2) + "x" : "-"; }
std::string Pct(double f) { return Fixed(100 * f, 1) + "%"; }
std::string MiB(uint64_t b) { return Fixed(double(b) / double(1ull << 20), 1); }

uint64_t Sum(const std::vector<DeviceIo>& d, uint64_t DeviceIo::*field) {
  uint64_t s = 0;
  for (const DeviceIo& x : d) s += x.*field;
  return s;
}

struct Totals {
  uint64_t stored = 0, served = 0;
  double store_seconds = 0;
};

Totals TotalsOf(const PhaseResult& p) {
  Totals t;
  for (const RequestRecord& r : p.requests) {
    t.stored += r.stored;
    t.served += r.served;
    t.store_seconds += r.store_seconds;
  }
  return t;
}

const PhaseResult* PhaseOf(const WorkloadSystemResult* s, size_t i) {
  return s != nullptr && i < s->phases.size() ? &s->phases[i] : nullptr;
}

json PhaseJson(const PhaseResult& p, const PhaseResult* kv) {
  Totals t = TotalsOf(p);
  json devices = json::array();
  for (const DeviceIo& d : p.io.devices) {
    devices.push_back({{"name", d.name}, {"kind", d.kind}, {"role", d.role},
                       {"bytes_read", d.bytes_read}, {"bytes_written", d.bytes_written}});
  }
  json req{{"index", json::array()}, {"chunks", json::array()}, {"stored", json::array()},
           {"served", json::array()}, {"load_seconds", json::array()}, {"store_seconds", json::array()}};
  for (const RequestRecord& r : p.requests) {
    req["index"].push_back(r.index);
    req["chunks"].push_back(r.chunks);
    req["stored"].push_back(r.stored);
    req["served"].push_back(r.served);
    req["load_seconds"].push_back(r.load_seconds);
    req["store_seconds"].push_back(r.store_seconds);
  }
  json j{{"phase", p.phase}, {"requests", p.requests.size()},
         {"requests_with_stored", p.RequestsWithStored()}, {"request_hits", p.RequestHits()},
         {"request_hit_rate", p.RequestHitRate()}, {"stored_chunks", t.stored},
         {"served_chunks", t.served}, {"chunk_hit_rate", p.ChunkHitRate()},
         {"load_p50_seconds", p.LoadP50()}, {"load_p99_seconds", p.LoadP99()},
         {"load_seconds_per_gib", p.LoadSecondsPerGiB()},
         {"dram_share", p.DramShare()}, {"dram_bytes_served", p.io.dram_bytes_served},
         {"bytes_served", p.io.bytes_served}, {"cpu_user_seconds", p.cpu_user_seconds},
         {"cpu_system_seconds", p.cpu_system_seconds}, {"store_seconds", t.store_seconds},
         {"wrong_bytes", p.wrong_bytes}, {"devices", devices}, {"per_request", req}};
  if (kv != nullptr) {
    j["load_p50_vs_kvpool"] = Div(p.LoadP50(), kv->LoadP50());
    j["chunk_hit_rate_vs_kvpool"] = Div(p.ChunkHitRate(), kv->ChunkHitRate());
    j["request_hit_rate_vs_kvpool"] = Div(p.RequestHitRate(), kv->RequestHitRate());
  }
  return j;
}

void WriteCsv(const WorkloadReport& r, const std::string& path) {
  std::ofstream out(path);
  out << "system,phase,requests,requests_with_stored,request_hits,request_hit_rate,stored_chunks,"
         "served_chunks,chunk_hit_rate,load_p50_s,load_p99_s,load_s_per_gib,dram_share,cpu_user_s,cpu_system_s,"
         "bytes_read,bytes_written,wrong_bytes,load_p50_vs_kvpool,chunk_hit_rate_vs_kvpool\n";
  const WorkloadSystemResult* kv = r.Find("kvpool");
  for (const WorkloadSystemResult& s : r.systems) {
    for (size_t i = 0; i < s.phases.size(); ++i) {
      const PhaseResult& p = s.phases[i];
      const PhaseResult* k = PhaseOf(kv, i);
      Totals t = TotalsOf(p);
      out << s.name << "," << p.phase << "," << p.requests.size() << "," << p.RequestsWithStored()
          << "," << p.RequestHits() << "," << p.RequestHitRate() << "," << t.stored << ","
          << t.served << "," << p.ChunkHitRate() << "," << p.LoadP50() << "," << p.LoadP99() << ","
          << p.LoadSecondsPerGiB() << "," << p.DramShare() << "," << p.cpu_user_seconds << ","
          << p.cpu_system_seconds << ","
          << Sum(p.io.devices, &DeviceIo::bytes_read) << ","
          << Sum(p.io.devices, &DeviceIo::bytes_written) << "," << p.wrong_bytes << ","
          << (k ? Div(p.LoadP50(), k->LoadP50()) : 0) << ","
          << (k ? Div(p.ChunkHitRate(), k->ChunkHitRate()) : 0) << "\n";
    }
  }
}

// Two panels over the trace: load seconds and served/stored chunks per
// request, one line per system, the restart marked.
bool Plot(const WorkloadReport& r, const std::string& dir, std::vector<std::string>* written) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
  std::ofstream data(dir + "/workload.dat");
  std::string load_plot, hit_plot;
  for (size_t i = 0; i < r.systems.size(); ++i) {
    data << "# " << r.systems[i].name << "\n";
    for (const PhaseResult& p : r.systems[i].phases) {
      for (const RequestRecord& q : p.requests) {
        if (q.stored == 0) continue;
        data << q.index << " " << q.load_seconds << " " << double(q.served) / q.stored << "\n";
      }
    }
    data << "\n\n";
    std::string src = "'" + dir + "/workload.dat' index " + std::to_string(i);
    std::string sep = i ? ", " : "";
    load_plot += sep + src + " using 1:2 with linespoints pt 7 ps 0.4 title '" + r.systems[i].name + "'";
    hit_plot += sep + src + " using 1:3 with points pt 7 ps 0.5 title '" + r.systems[i].name + "'";
  }
  data.close();
  std::string restart = r.config.value("restart_at", json(0)).dump();
  std::string title = r.config.value("title", std::string("workload"));
  std::ofstream gp(dir + "/workload.gp");
  gp << "set terminal pngcairo size 1000,760\nset output '" << dir << "/workload.png'\n"
     << "set multiplot layout 2,1 title \"" << title << "\" noenhanced font ',10'\n"
     << "set arrow 1 from " << restart << ", graph 0 to " << restart
     << ", graph 1 nohead dt 2 lc rgb 'red'\n"
     << "set label 1 'restart' at " << restart << ", graph 0.92 offset 0.5,0 tc rgb 'red'\n"
     << "set grid\nset key outside right\nset ylabel 'load (s)'\nset logscale y\nset format y '%g'\n"
     << "plot " << load_plot << "\n"
     << "unset logscale y\nset yrange [-0.05:1.05]\nset xlabel 'request'\n"
     << "set ylabel 'served / stored chunks'\nplot " << hit_plot << "\nunset multiplot\n";
  gp.close();
  if (std::system(("gnuplot '" + dir + "/workload.gp'").c_str()) != 0) return false;
  written->push_back(dir + "/workload.png");
  return true;
}

}  // namespace

uint32_t PhaseResult::RequestsWithStored() const {
  uint32_t n = 0;
  for (const RequestRecord& r : requests) n += r.stored > 0;
  return n;
}

uint32_t PhaseResult::RequestHits() const {
  uint32_t n = 0;
  for (const RequestRecord& r : requests) n += r.stored > 0 && r.served > 0;
  return n;
}

double PhaseResult::RequestHitRate() const { return Div(RequestHits(), RequestsWithStored()); }

double PhaseResult::ChunkHitRate() const {
  Totals t = TotalsOf(*this);
  return Div(double(t.served), double(t.stored));
}

std::vector<double> PhaseResult::LoadSeconds() const {
  std::vector<double> v;
  for (const RequestRecord& r : requests) {
    if (r.stored > 0) v.push_back(r.load_seconds);
  }
  return v;
}

double PhaseResult::LoadP50() const { return Percentile(LoadSeconds(), 50); }
double PhaseResult::LoadP99() const { return Percentile(LoadSeconds(), 99); }
double PhaseResult::LoadSecondsPerGiB() const {
  double seconds = 0;
  for (double x : LoadSeconds()) seconds += x;
  return Div(seconds, double(TotalsOf(*this).served) * double(chunk_bytes) / double(1ull << 30));
}

double PhaseResult::DramShare() const {
  return Div(double(io.dram_bytes_served), double(io.bytes_served));
}

uint64_t WorkloadSystemResult::WrongBytes() const {
  uint64_t n = 0;
  for (const PhaseResult& p : phases) n += p.wrong_bytes;
  return n;
}

const WorkloadSystemResult* WorkloadReport::Find(const std::string& name) const {
  for (const WorkloadSystemResult& s : systems) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

void WorkloadReport::PrintTable() const {
  const WorkloadSystemResult* kv = Find("kvpool");
  Table t({"phase", "system", "req hits", "chunk hits", "load p50 (s)", "load p99 (s)",
           "load s/GiB", "from DRAM", "CPU (s)", "read MiB", "written MiB", "p50 vs kvpool",
           "chunk hits vs kvpool"});
  Table d({"phase", "system", "device", "kind", "role", "read MiB", "written MiB"});
  size_t phases = systems.empty() ? 0 : systems.front().phases.size();
  for (size_t i = 0; i < phases; ++i) {
    const PhaseResult* k = PhaseOf(kv, i);
    for (const WorkloadSystemResult& s : systems) {
      const PhaseResult& p = s.phases[i];
      t.Add({p.phase, s.name,
             Pct(p.RequestHitRate()) + " (" + std::to_string(p.RequestHits()) + "/" +
                 std::to_string(p.RequestsWithStored()) + ")",
             Pct(p.ChunkHitRate()), Fixed(p.LoadP50(), 4), Fixed(p.LoadP99(), 4),
             Fixed(p.LoadSecondsPerGiB(), 3), Pct(p.DramShare()),
             Fixed(p.cpu_user_seconds + p.cpu_system_seconds, 2),
             MiB(Sum(p.io.devices, &DeviceIo::bytes_read)),
             MiB(Sum(p.io.devices, &DeviceIo::bytes_written)),
             k ? Ratio(p.LoadP50(), k->LoadP50()) : "-",
             k ? Ratio(p.ChunkHitRate(), k->ChunkHitRate()) : "-"});
      for (const DeviceIo& io : p.io.devices) {
        d.Add({p.phase, s.name, io.name, io.kind, io.role.empty() ? "-" : io.role,
               MiB(io.bytes_read), MiB(io.bytes_written)});
      }
    }
  }
  std::printf("\n%s", t.Render().c_str());
  std::printf("\nper device:\n%s", d.Render().c_str());
  Table r({"system", "restart (s)", "chunks found after restart", "wrong bytes"});
  for (const WorkloadSystemResult& s : systems) {
    r.Add({s.name, Fixed(s.restart_seconds, 3), std::to_string(s.found_after_restart),
           std::to_string(s.WrongBytes())});
  }
  std::printf("\n%s", r.Render().c_str());
  std::printf("load: lookup + retrieval of requests that had a prefix stored; chunk hits: "
              "chunks served / chunks stored before the request; s/GiB: load seconds per GiB delivered; CPU: getrusage of the "
              "system's loads and stores\n");
}

json WorkloadReport::ToJson() const {
  const WorkloadSystemResult* kv = Find("kvpool");
  json j{{"config", config}, {"systems", json::array()}};
  for (const WorkloadSystemResult& s : systems) {
    json phases = json::array();
    for (size_t i = 0; i < s.phases.size(); ++i) phases.push_back(PhaseJson(s.phases[i], PhaseOf(kv, i)));
    j["systems"].push_back({{"name", s.name}, {"description", s.description},
                            {"restart_seconds", s.restart_seconds},
                            {"found_after_restart", s.found_after_restart},
                            {"wrong_bytes", s.WrongBytes()}, {"phases", phases}});
  }
  return j;
}

std::vector<std::string> WorkloadReport::Write(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::vector<std::string> written;
  std::ofstream(dir + "/workload.json") << ToJson().dump(2) << "\n";
  written.push_back(dir + "/workload.json");
  WriteCsv(*this, dir + "/workload.csv");
  written.push_back(dir + "/workload.csv");
  if (!Plot(*this, dir, &written)) std::fprintf(stderr, "gnuplot missing or failed: no PNG plot\n");
  return written;
}

}  // namespace kvpool::cli
