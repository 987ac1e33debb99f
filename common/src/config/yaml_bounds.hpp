#pragma once
// YAML parsed within bounds. yaml-cpp keeps an alias as a reference to its anchor's node, so a
// document can be a cycle (`x: &x {<<: *x}`) or an alias bomb (each level doubling the one
// before: 11 lines make 2^40 nodes); whoever walks the tree then recurses for ever or runs out of
// memory. A pass over the parser's events first measures the document as a walk would see it
// (aliases expanded) and refuses it before a tree is built.

#include <cstddef>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace ticketflow {

struct YamlLimits {
  std::size_t max_bytes = 4 << 20;            // configuration, runbooks, prompts: far below this
  std::size_t max_depth = 64;                 // nested mappings and sequences
  std::size_t max_expanded_nodes = 200'000;   // every node a walk visits, aliases expanded
  std::size_t max_expanded_bytes = 16 << 20;  // the text of every scalar and key it visits
  std::size_t max_documents = 1000;           // in one stream (runbooks are one file of documents)
};

// Every document of `text`. Throws ConfigError naming `source`, the line and the reason for text
// that is not YAML or breaks a limit.
std::vector<YAML::Node> loadBoundedYaml(const std::string& text, const std::string& source,
                                        const YamlLimits& limits = {});

}  // namespace ticketflow
