#include "ticketflow/observability/metrics.hpp"

#include <cmath>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace ticketflow::observability {
namespace {

void atomicAdd(std::atomic<double>& target, double by) {
  double current = target.load();
  while (!target.compare_exchange_weak(current, current + by)) {
  }
}

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

std::string labelText(const std::vector<std::string>& names, const LabelValues& values, const std::string& extra = "") {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i)
    out += (out.empty() ? "" : ",") + names[i] + "=\"" + escapeLabel(values[i]) + "\"";
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? "" : "{" + out + "}";
}

}  // namespace

void Counter::inc(double by) {
  if (by < 0) return;  // counters only go up
  atomicAdd(value_, by);
}

void Gauge::add(double by) {
  atomicAdd(value_, by);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1);
  atomicAdd(sum_, v);
}

std::vector<std::uint64_t> Histogram::cumulativeCounts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load();
    out[i] = running;
  }
  return out;
}

template <typename T>
T& Family<T>::with(const LabelValues& values) {
  if (values.size() != labels_.size())
    throw std::invalid_argument(name_ + ": expected " + std::to_string(labels_.size()) + " label values");
  std::lock_guard lock(mutex_);
  auto it = series_.find(values);
  if (it == series_.end()) {
    if constexpr (std::is_same_v<T, Histogram>)
      it = series_.emplace(values, std::make_unique<T>(bounds_)).first;
    else
      it = series_.emplace(values, std::make_unique<T>()).first;
  }
  return *it->second;
}

template <typename T>
std::vector<std::pair<LabelValues, const T*>> Family<T>::series() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<LabelValues, const T*>> out;
  for (const auto& [values, metric] : series_) out.emplace_back(values, metric.get());
  return out;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void MetricsRegistry::checkName(const std::string& name, const std::vector<std::string>& labels) {
  static const std::regex metric_re("^[a-zA-Z_:][a-zA-Z0-9_:]*$");
  static const std::regex label_re("^[a-zA-Z_][a-zA-Z0-9_]*$");
  if (!std::regex_match(name, metric_re)) throw std::invalid_argument("bad metric name " + name);
  for (const auto& l : labels)
    if (!std::regex_match(l, label_re) || l.rfind("__", 0) == 0 || l == "le")
      throw std::invalid_argument("bad label name " + l + " on " + name);
  for (const auto& existing : order_)
    if (existing == name) throw std::invalid_argument("metric " + name + " registered twice");
  order_.push_back(name);
}

Family<Counter>& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                          std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  checkName(name, labels);
  return *counters_.emplace(name, std::make_unique<Family<Counter>>(name, help, std::move(labels))).first->second;
}

Family<Gauge>& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  checkName(name, labels);
  return *gauges_.emplace(name, std::make_unique<Family<Gauge>>(name, help, std::move(labels))).first->second;
}

Family<Histogram>& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                              std::vector<std::string> labels, std::vector<double> bounds) {
  std::lock_guard lock(mutex_);
  checkName(name, labels);
  if (bounds.empty() || !std::is_sorted(bounds.begin(), bounds.end()))
    throw std::invalid_argument("histogram " + name + " needs increasing bucket bounds");
  return *histograms_
              .emplace(name, std::make_unique<Family<Histogram>>(name, help, std::move(labels), std::move(bounds)))
              .first->second;
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  for (const auto& name : order_) {
    if (auto c = counters_.find(name); c != counters_.end()) {
      out << "# HELP " << name << " " << escapeHelp(c->second->help()) << "\n# TYPE " << name << " counter\n";
      for (const auto& [values, m] : c->second->series())
        out << name << labelText(c->second->labels(), values) << " " << formatValue(m->value()) << "\n";
    } else if (auto g = gauges_.find(name); g != gauges_.end()) {
      out << "# HELP " << name << " " << escapeHelp(g->second->help()) << "\n# TYPE " << name << " gauge\n";
      for (const auto& [values, m] : g->second->series())
        out << name << labelText(g->second->labels(), values) << " " << formatValue(m->value()) << "\n";
    } else if (auto h = histograms_.find(name); h != histograms_.end()) {
      out << "# HELP " << name << " " << escapeHelp(h->second->help()) << "\n# TYPE " << name << " histogram\n";
      for (const auto& [values, m] : h->second->series()) {
        const auto counts = m->cumulativeCounts();
        const auto& labels = h->second->labels();
        for (std::size_t i = 0; i < m->bounds().size(); ++i)
          out << name << "_bucket" << labelText(labels, values, "le=\"" + formatValue(m->bounds()[i]) + "\"") << " "
              << counts[i] << "\n";
        out << name << "_bucket" << labelText(labels, values, "le=\"+Inf\"") << " " << counts.back() << "\n";
        out << name << "_sum" << labelText(labels, values) << " " << formatValue(m->sum()) << "\n";
        out << name << "_count" << labelText(labels, values) << " " << counts.back() << "\n";
      }
    }
  }
  return out.str();
}

std::vector<double> MetricsRegistry::latencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::vector<double> MetricsRegistry::similarityBuckets() {
  return {0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1};
}

}  // namespace ticketflow::observability
