#include "yaml_bounds.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

#include "ticketflow/config/config.hpp"

namespace ticketflow {
namespace {

// Counts the nodes each anchored node expands to, so an alias costs what it will cost a walk.
class BoundsCheck final : public YAML::EventHandler {
 public:
  BoundsCheck(const std::string& source, const YamlLimits& limits) : source_(source), limits_(limits) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    // The stream's total stays: many small documents cost what one large one does.
    if (++documents_ > limits_.max_documents)
      fail(mark, "more than " + std::to_string(limits_.max_documents) + " documents");
    sizes_.clear();
    open_.clear();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string&) override {
    leaf(mark, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    for (const auto& entry : open_)
      if (entry.anchor == anchor && anchor != YAML::NullAnchor)
        fail(mark, "an alias refers to a node that contains it (a cycle)");
    auto it = sizes_.find(anchor);
    add(mark, it == sizes_.end() ? 1 : it->second);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Open {
    YAML::anchor_t anchor;
    std::size_t nodes;  // this collection and everything in it so far
  };

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& reason) const {
    throw ConfigError(source_, "", reason, mark.line + 1);
  }

  void add(const YAML::Mark& mark, std::size_t nodes) {
    total_ += nodes;
    if (total_ > limits_.max_expanded_nodes)
      fail(mark, "the document expands to more than " + std::to_string(limits_.max_expanded_nodes) +
                     " nodes (aliases counted at their size: an alias bomb?)");
    if (!open_.empty()) open_.back().nodes += nodes;
  }
  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) sizes_[anchor] = 1;
    add(mark, 1);
  }
  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (open_.size() >= limits_.max_depth)
      fail(mark, "nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    add(mark, 1);
    open_.push_back({anchor, 1});
  }
  void close() {
    const Open done = open_.back();
    open_.pop_back();
    if (done.anchor != YAML::NullAnchor) sizes_[done.anchor] = done.nodes;
    // total_ counted the collection and its children as they came; the parent's size grows now.
    if (!open_.empty()) open_.back().nodes += done.nodes - 1;
  }

  const std::string& source_;
  const YamlLimits& limits_;
  std::map<YAML::anchor_t, std::size_t> sizes_;
  std::vector<Open> open_;
  std::size_t total_ = 0;
  std::size_t documents_ = 0;
};

}  // namespace

std::vector<YAML::Node> loadBoundedYaml(const std::string& text, const std::string& source, const YamlLimits& limits) {
  if (text.size() > limits.max_bytes)
    throw ConfigError(source, "", "the file is " + std::to_string(text.size()) + " bytes; the limit is " +
                                      std::to_string(limits.max_bytes));
  // YAML text holds no NUL (nor does any text file); yaml-cpp 0.7 can loop on one for ever.
  if (const auto nul = text.find('\0'); nul != std::string::npos) {
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(nul), '\n');
    throw ConfigError(source, "", "a NUL byte (not a text file)", static_cast<int>(line));
  }
  try {
    {
      std::istringstream in(text);
      YAML::Parser parser(in);
      BoundsCheck check(source, limits);
      while (parser.HandleNextDocument(check)) {
      }
    }
    return YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source, "", "not valid YAML: " + e.msg, e.mark.line + 1);
  }
}

}  // namespace ticketflow
