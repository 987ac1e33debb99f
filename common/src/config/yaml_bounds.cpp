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
    // The stream's totals stay: many small documents cost what one large one does.
    if (++documents_ > limits_.max_documents)
      fail(mark, "more than " + std::to_string(limits_.max_documents) + " documents");
    anchors_.clear();
    open_.clear();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor, 0); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    leaf(mark, anchor, value.size());
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    for (const auto& entry : open_)
      if (entry.anchor == anchor && anchor != YAML::NullAnchor)
        fail(mark, "an alias refers to a node that contains it (a cycle)");
    auto it = anchors_.find(anchor);
    const Size size = it == anchors_.end() ? Size{1, 0, 0} : it->second;
    if (open_.size() + size.height > limits_.max_depth)
      fail(mark, "nested deeper than " + std::to_string(limits_.max_depth) + " levels (through an alias)");
    add(mark, size);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  // What a node costs a walk: nodes, scalar bytes, and how deep it reaches below itself.
  struct Size {
    std::size_t nodes = 0;
    std::size_t bytes = 0;
    std::size_t height = 0;
  };
  struct Open {
    YAML::anchor_t anchor;
    Size size;  // this collection and everything in it so far
  };

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& reason) const {
    throw ConfigError(source_, "", reason, mark.line + 1);
  }

  void add(const YAML::Mark& mark, const Size& size) {
    total_.nodes += size.nodes;
    total_.bytes += size.bytes;
    if (total_.nodes > limits_.max_expanded_nodes)
      fail(mark, "the document expands to more than " + std::to_string(limits_.max_expanded_nodes) +
                     " nodes (aliases counted at their size: an alias bomb?)");
    if (total_.bytes > limits_.max_expanded_bytes)
      fail(mark, "the document expands to more than " + std::to_string(limits_.max_expanded_bytes) +
                     " bytes of text (aliases counted at their size)");
    if (!open_.empty()) {
      Size& parent = open_.back().size;
      parent.nodes += size.nodes;
      parent.bytes += size.bytes;
      parent.height = std::max(parent.height, size.height + 1);
    }
  }
  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor, std::size_t bytes) {
    const Size size{1, bytes, 0};
    if (anchor != YAML::NullAnchor) anchors_[anchor] = size;
    add(mark, size);
  }
  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (open_.size() >= limits_.max_depth)
      fail(mark, "nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    add(mark, Size{1, 0, 0});
    open_.push_back({anchor, Size{1, 0, 0}});
  }
  void close() {
    const Open done = open_.back();
    open_.pop_back();
    if (done.anchor != YAML::NullAnchor) anchors_[done.anchor] = done.size;
    // The totals counted the collection and its children as they came; the parent's size grows now.
    if (!open_.empty()) {
      Size& parent = open_.back().size;
      parent.nodes += done.size.nodes - 1;
      parent.bytes += done.size.bytes;
      parent.height = std::max(parent.height, done.size.height + 1);
    }
  }

  const std::string& source_;
  const YamlLimits& limits_;
  std::map<YAML::anchor_t, Size> anchors_;
  std::vector<Open> open_;
  Size total_;
  std::size_t documents_ = 0;
};

}  // namespace

std::vector<YAML::Node> loadBoundedYaml(const std::string& text, const std::string& source, const YamlLimits& limits) {
  if (text.size() > limits.max_bytes)
    throw ConfigError(source, "", "the file is over the limit of " + std::to_string(limits.max_bytes) + " bytes");
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
