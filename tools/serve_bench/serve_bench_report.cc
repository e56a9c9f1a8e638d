#include "serve_bench_report.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "bench_util.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

std::string Ratio(double num, double den) { return den > 0 ? Fixed(num / den, 2) + "x" : "-"; }
std::string Pct(double f) { return Fixed(100 * f, 1) + "%"; }
std::string Sec(double s) { return Fixed(s, s >= 10 ? 1 : s >= 1 ? 2 : 3); }

const ServeBenchPhase* PhaseOf(const ServeBenchSystemRun* s, size_t i) {
  return s != nullptr && i < s->phases.size() ? &s->phases[i] : nullptr;
}

json RequestJson(const ServeBenchRequestRecord& r) {
  const ServeChatSample& s = r.sample;
  return {{"index", r.index},
          {"doc", r.request.doc},
          {"session", r.request.session},
          {"turn", r.request.turn},
          {"first_visit", r.request.first_visit},
          {"ttft_s", s.ttft_seconds},
          {"ttft_from_content", s.ttft_from_content},
          {"total_s", s.total_seconds},
          {"prompt_tokens", s.prompt_tokens},
          {"cached_tokens", s.cached_tokens},
          {"generated_tokens", s.generated_tokens},
          {"error", s.error}};
}

json PhaseJson(const ServeBenchPhase& p, const ServeBenchPhase* kv) {
  json requests = json::array();
  for (const ServeBenchRequestRecord& r : p.requests) requests.push_back(RequestJson(r));
  json j{{"phase", p.phase},
         {"requests", p.requests.size()},
         {"errors", p.Errors()},
         {"start_seconds", p.start_seconds},
         {"wall_seconds", p.wall_seconds},
         {"ttft_p50_s", p.TtftP50()},
         {"ttft_p90_s", p.TtftP90()},
         {"ttft_mean_s", p.TtftMean()},
         {"revisit_ttft_p50_s", p.RevisitTtftP50()},
         {"cached_token_share", p.CachedShare()},
         {"requests_per_minute", p.RequestsPerMinute()},
         {"per_request", requests}};
  if (kv != nullptr) {
    j["ttft_p50_vs_kvpool"] = Div(p.TtftP50(), kv->TtftP50());
    j["ttft_p90_vs_kvpool"] = Div(p.TtftP90(), kv->TtftP90());
  }
  return j;
}

void WriteCsv(const ServeBenchReport& r, const std::string& path) {
  std::ofstream out(path);
  out << "system,phase,requests,errors,ttft_p50_s,ttft_p90_s,ttft_mean_s,revisit_ttft_p50_s,"
         "cached_token_share,requests_per_minute,start_s,wall_s,ttft_p50_vs_kvpool,"
         "ttft_p90_vs_kvpool\n";
  const ServeBenchSystemRun* kv = r.Find("kvpool");
  for (const ServeBenchSystemRun& s : r.systems) {
    for (size_t i = 0; i < s.phases.size(); ++i) {
      const ServeBenchPhase& p = s.phases[i];
      const ServeBenchPhase* k = PhaseOf(kv, i);
      out << s.name << "," << p.phase << "," << p.requests.size() << "," << p.Errors() << ","
          << p.TtftP50() << "," << p.TtftP90() << "," << p.TtftMean() << "," << p.RevisitTtftP50()
          << "," << p.CachedShare() << "," << p.RequestsPerMinute() << "," << p.start_seconds
          << "," << p.wall_seconds << "," << (k ? Div(p.TtftP50(), k->TtftP50()) : 0) << ","
          << (k ? Div(p.TtftP90(), k->TtftP90()) : 0) << "\n";
    }
  }
}

std::string RatioTable(const ServeBenchReport& r) {
  const ServeBenchSystemRun* kv = r.Find("kvpool");
  const ServeBenchSystemRun* ls = r.Find("llama-server");
  if (kv == nullptr || ls == nullptr) return "";
  Table t({"phase", "llama-server / kvpool TTFT p50", "TTFT p90", "TTFT mean", "req/min kvpool / llama-server"});
  for (size_t i = 0; i < kv->phases.size() && i < ls->phases.size(); ++i) {
    const ServeBenchPhase& k = kv->phases[i];
    const ServeBenchPhase& l = ls->phases[i];
    t.Add({k.phase, Ratio(l.TtftP50(), k.TtftP50()), Ratio(l.TtftP90(), k.TtftP90()),
           Ratio(l.TtftMean(), k.TtftMean()), Ratio(k.RequestsPerMinute(), l.RequestsPerMinute())});
  }
  std::string out = "\n";
  out += t.Render();
  return out;
}

}  // namespace

std::vector<double> ServeBenchPhase::Ttfts() const {
  std::vector<double> v;
  for (const ServeBenchRequestRecord& r : requests) {
    if (r.sample.ok()) v.push_back(r.sample.ttft_seconds);
  }
  return v;
}

double ServeBenchPhase::TtftP50() const { return Percentile(Ttfts(), 50); }
double ServeBenchPhase::TtftP90() const { return Percentile(Ttfts(), 90); }

double ServeBenchPhase::TtftMean() const {
  const std::vector<double> v = Ttfts();
  return Div(std::accumulate(v.begin(), v.end(), 0.0), double(v.size()));
}

double ServeBenchPhase::RevisitTtftP50() const {
  std::vector<double> v;
  for (const ServeBenchRequestRecord& r : requests) {
    if (r.sample.ok() && !r.request.first_visit) v.push_back(r.sample.ttft_seconds);
  }
  return Percentile(v, 50);
}

double ServeBenchPhase::CachedShare() const {
  uint64_t cached = 0, prompt = 0;
  for (const ServeBenchRequestRecord& r : requests) {
    cached += r.sample.cached_tokens;
    prompt += r.sample.prompt_tokens;
  }
  return Div(double(cached), double(prompt));
}

double ServeBenchPhase::RequestsPerMinute() const {
  return Div(double(requests.size()), wall_seconds / 60);
}

uint32_t ServeBenchPhase::Errors() const {
  uint32_t n = 0;
  for (const ServeBenchRequestRecord& r : requests) n += !r.sample.ok();
  return n;
}

// Median of a probe's computed tokens, "-" when it has none.
static std::string ComputedP50(const ServeBenchProbe& p) {
  if (p.computed_tokens.empty()) return "-";
  std::vector<double> v(p.computed_tokens.begin(), p.computed_tokens.end());
  return Fixed(Median(std::move(v)), 0);
}

// The restore probe: medians, and kvpool's against llama-server's RAM-cache
// restore of the same prompt; the tokens each server computed show what its
// cache did not restore.
static std::string ProbeTable(const ServeBenchReport& r) {
  cli::Table t({"system", "probes", "hit TTFT p50 (s)", "after restart TTFT p50 (s)",
                "hit / llama-server RAM hit", "after restart / llama-server RAM hit",
                "computed tokens p50 (hit / after restart)"});
  const ServeBenchSystemRun* llama = r.Find("llama-server");
  const double ram_hit = llama != nullptr && !llama->probe_hit.ttft_seconds.empty()
                             ? Median(llama->probe_hit.ttft_seconds) : 0;
  for (const ServeBenchSystemRun& s : r.systems) {
    if (s.probe_hit.ttft_seconds.empty()) continue;
    const double hit = Median(s.probe_hit.ttft_seconds);
    const double restart =
        s.probe_restart.ttft_seconds.empty() ? 0 : Median(s.probe_restart.ttft_seconds);
    t.Add({s.name, std::to_string(s.probe_hit.ttft_seconds.size()), Sec(hit), Sec(restart),
           ram_hit > 0 ? Fixed(hit / ram_hit, 2) + "x" : "-",
           ram_hit > 0 && restart > 0 ? Fixed(restart / ram_hit, 2) + "x" : "-",
           ComputedP50(s.probe_hit) + " / " + ComputedP50(s.probe_restart)});
  }
  return "\nRestore probe: the same prompt again after another document's, then as the first "
         "request after a restart (kvpool: from the SSD)\n" + t.Render();
}

const ServeBenchSystemRun* ServeBenchReport::Find(const std::string& name) const {
  for (const ServeBenchSystemRun& s : systems) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string ServeBenchReport::Table() const {
  cli::Table t({"phase", "system", "requests", "errors", "TTFT p50 (s)", "TTFT p90 (s)",
                "TTFT mean (s)", "revisit p50 (s)", "cached tokens", "req/min", "start (s)"});
  const size_t phases = systems.empty() ? 0 : systems.front().phases.size();
  for (size_t i = 0; i < phases; ++i) {
    for (const ServeBenchSystemRun& s : systems) {
      const ServeBenchPhase* p = PhaseOf(&s, i);
      if (p == nullptr) continue;
      t.Add({p->phase, s.name, std::to_string(p->requests.size()), std::to_string(p->Errors()),
             Sec(p->TtftP50()), Sec(p->TtftP90()), Sec(p->TtftMean()), Sec(p->RevisitTtftP50()),
             Pct(p->CachedShare()), Fixed(p->RequestsPerMinute(), 1), Sec(p->start_seconds)});
    }
  }
  std::string out = t.Render();
  out += RatioTable(*this);
  out += ProbeTable(*this);
  out += "TTFT: request sent until the first streamed chunk with content; cached tokens: "
         "prompt tokens the server did not compute / all prompt tokens; revisit: requests whose "
         "document an earlier request of the trace was about; req/min: requests / wall minutes "
         "of the phase (one request at a time)\n";
  return out;
}

json ServeBenchReport::ToJson() const {
  const ServeBenchSystemRun* kv = Find("kvpool");
  json j{{"config", config}, {"systems", json::array()}};
  for (const ServeBenchSystemRun& s : systems) {
    json phases = json::array();
    for (size_t i = 0; i < s.phases.size(); ++i) {
      phases.push_back(PhaseJson(s.phases[i], s.name == "kvpool" ? nullptr : PhaseOf(kv, i)));
    }
    j["systems"].push_back({{"name", s.name},
                            {"description", s.description},
                            {"command", s.command},
                            {"stop_seconds", s.stop_seconds},
                            {"exit_at_restart", s.first_exit},
                            {"exit_at_end", s.last_exit},
                            {"phases", phases},
                            {"probe_hit_ttft_s", s.probe_hit.ttft_seconds},
                            {"probe_hit_computed_tokens", s.probe_hit.computed_tokens},
                            {"probe_restart_ttft_s", s.probe_restart.ttft_seconds},
                            {"probe_restart_computed_tokens", s.probe_restart.computed_tokens}});
  }
  return j;
}

std::vector<std::string> ServeBenchReport::Write(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::vector<std::string> written;
  std::ofstream(dir + "/serve.json") << ToJson().dump(2) << "\n";
  written.push_back(dir + "/serve.json");
  WriteCsv(*this, dir + "/serve.csv");
  written.push_back(dir + "/serve.csv");
  if (PlotServeBench(*this, dir)) {
    written.push_back(dir + "/serve.png");
  } else {
    std::fprintf(stderr, "gnuplot missing or failed: no PNG plot\n");
  }
  return written;
}

}  // namespace kvpool::cli
