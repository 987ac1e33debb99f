#include "ticketflow/cli/args.hpp"

#include <sstream>

namespace ticketflow::cli {

std::optional<std::string> ParsedArgs::find(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (spec_) {
    for (const auto& o : spec_->options)
      if (o.name == name && !o.value_name.empty() && !o.default_value.empty()) return o.default_value;
  }
  return std::nullopt;
}

std::string ParsedArgs::get(const std::string& name) const {
  auto v = find(name);
  if (!v) throw UsageError("missing --" + name);
  return *v;
}

long long ParsedArgs::getInt(const std::string& name, long long min, long long max) const {
  const std::string v = get(name);
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty()) throw UsageError("--" + name + " must be an integer, got '" + v + "'");
  if (n < min || n > max)
    throw UsageError("--" + name + " must be between " + std::to_string(min) + " and " + std::to_string(max));
  return n;
}

double ParsedArgs::getDouble(const std::string& name) const {
  const std::string v = get(name);
  std::size_t used = 0;
  double d = 0;
  try {
    d = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty()) throw UsageError("--" + name + " must be a number, got '" + v + "'");
  return d;
}

ParsedArgs parseArgs(const CommandSpec& spec, const std::vector<std::string>& args) {
  ParsedArgs out;
  out.spec_ = &spec;
  bool only_positionals = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positionals || a.size() < 2 || a[0] != '-' || a == "-") {
      out.positionals_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      out.help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) throw UsageError("unknown option '" + a + "'");
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const OptionSpec* opt = nullptr;
    for (const auto& o : spec.options)
      if (o.name == name) opt = &o;
    if (!opt) throw UsageError("unknown option '--" + name + "'");
    if (opt->value_name.empty()) {
      if (has_value) throw UsageError("--" + name + " takes no value");
      out.values_[name] = "true";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) throw UsageError("--" + name + " needs a value (" + opt->value_name + ")");
      value = args[++i];
    }
    out.values_[name] = value;
  }
  if (out.help_) return out;
  if (out.positionals_.size() < spec.min_positionals)
    throw UsageError(spec.positionals.empty() ? "missing argument" : "missing " + spec.positionals);
  if (out.positionals_.size() > spec.max_positionals)
    throw UsageError("unexpected argument '" + out.positionals_[spec.max_positionals] + "'");
  return out;
}

std::string usage(const CommandSpec& spec) {
  std::ostringstream o;
  o << "usage: ticketflow " << spec.name;
  if (!spec.options.empty()) o << " [options]";
  if (!spec.positionals.empty()) o << " " << spec.positionals;
  o << "\n\n" << spec.summary << "\n";
  if (!spec.details.empty()) o << "\n" << spec.details << "\n";
  o << "\noptions:\n";
  for (const auto& opt : spec.options) {
    std::string left = "  --" + opt.name + (opt.value_name.empty() ? "" : " " + opt.value_name);
    if (left.size() < 28)
      left.resize(28, ' ');
    else
      left += "  ";
    o << left << opt.help;
    if (!opt.default_value.empty()) o << " (default: " << opt.default_value << ")";
    o << "\n";
  }
  o << "  --help                    show this help\n";
  return o.str();
}

}  // namespace ticketflow::cli
