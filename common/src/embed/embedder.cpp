#include "ticketflow/embed/embedder.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

namespace ticketflow::embed {
namespace {

// Function words and helpdesk boilerplate, weighted apart from the rest (boilerplate_factor).
const std::unordered_set<std::string_view>& stopWords() {
  static const std::unordered_set<std::string_view> words = {
      "a",      "an",        "the",    "and",     "or",        "of",      "to",     "in",        "on",     "for",
      "with",   "at",        "by",     "from",    "is",        "are",     "was",    "were",      "be",     "been",
      "it",     "this",      "that",   "i",       "we",        "you",     "me",     "my",        "our",    "your",
      "us",     "as",        "if",     "so",      "but",       "not",     "no",     "do",        "does",   "did",
      "have",   "has",       "had",    "can",     "could",     "would",   "will",   "should",    "there",  "here",
      "all",    "any",       "also",   "just",    "re",        "fw",      "fwd",    "hi",        "hello",  "dear",
      "please", "pls",       "thanks", "thank",   "thx",       "regards", "kind",   "best",      "team",   "sir",
      "madam",  "greetings", "good",   "morning", "afternoon", "evening", "cheers", "sincerely", "help",   "need",
      "needed", "know",      "let",    "advise",  "kindly",    "via",     "since",  "after",     "before", "when",
      "what",   "which",     "who",    "how",     "why"};
  return words;
}

constexpr std::uint64_t kWordSeed = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t kBigramSeed = 0xc2b2ae3d27d4eb4fULL;
constexpr std::uint64_t kCharSeed = 0x165667b19e3779f9ULL;

}  // namespace

std::uint64_t cacheHash64(std::string_view data, std::uint64_t seed) {
  std::uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  // Final avalanche so low bits (the bucket) depend on every byte.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

std::string normaliseForCache(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_digits = false;
  for (unsigned char c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
    const bool letter = c >= 'a' && c <= 'z';
    const bool digit = c >= '0' && c <= '9';
    if (digit) {
      if (!in_digits) out.push_back('0');
      in_digits = true;
      continue;
    }
    in_digits = false;
    if (letter || c >= 0x80) {  // UTF-8 bytes stay part of words
      out.push_back(static_cast<char>(c));
    } else if (!out.empty() && out.back() != ' ') {
      out.push_back(' ');
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

HashingEmbedder::HashingEmbedder(int dimension, HashingEmbedderOptions options)
    : dimension_(dimension), options_(options) {}

Result<std::vector<float>> HashingEmbedder::embed(std::string_view text) const {
  if (dimension_ <= 0) return Error::invalidArgument("embedder dimension must be positive");
  const std::string norm = normaliseForCache(text);
  std::vector<std::string_view> words;
  for (std::size_t i = 0; i < norm.size();) {
    const std::size_t end = std::min(norm.find(' ', i), norm.size());
    words.emplace_back(norm.data() + i, end - i);
    i = end + 1;
  }
  // Per group (words, bigrams, characters): counts per hashed feature, with the boilerplate
  // factor of the feature; the groups are mixed by their weights (optionally each normalised
  // first).
  struct Feature {
    double count = 0;
    double factor = 0;
  };
  std::unordered_map<std::uint64_t, Feature> groups[3];
  auto add = [](std::unordered_map<std::uint64_t, Feature>& group, std::uint64_t h, double factor) {
    auto& f = group[h];
    f.count += 1;
    f.factor = std::max(f.factor, factor);
  };
  const auto& stops = stopWords();
  std::string buf;
  for (std::size_t w = 0; w < words.size(); ++w) {
    const bool stop = stops.count(words[w]) > 0;
    const double factor = stop ? options_.boilerplate_factor : 1.0;
    add(groups[0], cacheHash64(words[w], kWordSeed), factor);
    if (w + 1 < words.size()) {
      const bool stop2 = stops.count(words[w + 1]) > 0;
      buf.assign(words[w]);
      buf.push_back(' ');
      buf.append(words[w + 1]);
      add(groups[1], cacheHash64(buf, kBigramSeed), stop && stop2 ? options_.boilerplate_factor : 1.0);
    }
    buf.assign(1, ' ');
    buf.append(words[w]);
    buf.push_back(' ');
    for (int n = options_.char_min; n <= options_.char_max; ++n) {
      const auto len = static_cast<std::size_t>(n);
      if (buf.size() < len) break;
      for (std::size_t i = 0; i + len <= buf.size(); ++i)
        add(groups[2], cacheHash64(std::string_view(buf).substr(i, len), kCharSeed), factor);
    }
  }
  std::vector<float> v(static_cast<std::size_t>(dimension_), 0.0f);
  const double weights[3] = {options_.word_weight, options_.bigram_weight, options_.char_weight};
  std::vector<std::pair<std::size_t, double>> values;
  for (int g = 0; g < 3; ++g) {
    if (weights[g] <= 0 || groups[g].empty()) continue;
    values.clear();
    double group_norm2 = 0;
    for (const auto& [h, f] : groups[g]) {
      // Sublinear term frequency: a repeated word counts, but not linearly.
      const double tf_value = options_.sublinear_tf ? 1.0 + std::log(f.count) : f.count;
      const double value = f.factor * tf_value * ((h >> 63) ? -1.0 : 1.0);
      values.emplace_back(static_cast<std::size_t>(h % static_cast<std::uint64_t>(dimension_)), value);
      group_norm2 += value * value;
    }
    const double scale = options_.normalise_groups ? weights[g] / std::sqrt(group_norm2) : weights[g];
    for (const auto& [index, value] : values) v[index] += static_cast<float>(value * scale);
  }
  double norm2 = 0;
  for (float x : v) norm2 += static_cast<double>(x) * x;
  if (norm2 > 0) {
    const auto inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (float& x : v) x *= inv;
  }
  return v;
}

}  // namespace ticketflow::embed
