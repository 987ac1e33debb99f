#pragma once
// Command-line parsing shared by every subcommand: declared options, --help, and a usage
// error (exit 2) that prints the command's usage.

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ticketflow::cli {

struct OptionSpec {
  std::string name;             // without dashes: "config"
  std::string value_name = "";  // empty for a flag; else e.g. "FILE"
  std::string help = "";
  std::string default_value = "";  // shown in help; used when absent (value options only)
};

struct CommandSpec {
  std::string name;              // "broker", "config check"
  std::string summary = "";      // one line
  std::string positionals = "";  // usage text for positionals, e.g. "FILE"
  std::size_t min_positionals = 0;
  std::size_t max_positionals = 0;
  std::vector<OptionSpec> options = {};
  std::string details = "";  // extra help text
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ParsedArgs {
 public:
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  // The option's value, or its default; throws UsageError if neither.
  std::string get(const std::string& name) const;
  std::optional<std::string> find(const std::string& name) const;
  long long getInt(const std::string& name, long long min, long long max) const;
  double getDouble(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  bool helpRequested() const { return help_; }

 private:
  friend ParsedArgs parseArgs(const CommandSpec& spec, const std::vector<std::string>& args);
  const CommandSpec* spec_ = nullptr;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positionals_;
  bool help_ = false;
};

// Parses `args` (after the command words). --name=value and --name value both work.
// Throws UsageError on unknown options, missing values or wrong positional counts.
ParsedArgs parseArgs(const CommandSpec& spec, const std::vector<std::string>& args);

// Full help text for a command.
std::string usage(const CommandSpec& spec);

}  // namespace ticketflow::cli
