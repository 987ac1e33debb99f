#include "ticketflow/classify/difficulty.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "difficulty_lexicon.hpp"
#include "ticketflow/classify/text_features.hpp"

namespace ticketflow::classify {
namespace {

using namespace difficulty_lexicon;  // the word lists the signals count

// Signal order is the output order of DifficultyResult::signals.
const std::vector<std::string> kSignalNames = {"bias",    "length",   "problems",  "error_codes", "technical_terms",
                                               "outage",  "security", "data_loss", "systems",     "category_prior",
                                               "urgency", "routine"};

// Built-in weights, set by hand on tests/data/difficulty/tickets.jsonl (see docs/classifier.md).
const std::map<std::string, double> kBuiltinWeights = {
    {"bias", 0.24},    {"length", 0.22},   {"problems", 0.16},  {"error_codes", 0.22}, {"technical_terms", 0.22},
    {"outage", 0.42},  {"security", 0.45}, {"data_loss", 0.40}, {"systems", 0.18},     {"category_prior", 0.16},
    {"urgency", 0.12}, {"routine", -0.28}};

// Category prior: how hard tickets of a category tend to be, from the IT-ticket corpus's labels
// (storage and projects involve more systems than a hardware swap or an access grant).
const std::map<std::string, double> kCategoryPrior = {
    {"Hardware", 0.35}, {"HR Support", 0.15}, {"Access", 0.25},           {"Miscellaneous", 0.35},
    {"Storage", 0.60},  {"Purchase", 0.10},   {"Internal Project", 0.65}, {"Administrative rights", 0.45}};

// The word and phrase lists above, indexed by first word, so one pass over a text's tokens
// with one hash probe per token counts matches for every list. An entry ending in '*' matches
// any word starting with it ("impersonat*"). Built once at start-up.
enum PhraseListId {
  kConnectiveList,
  kErrorList,
  kTechnicalList,
  kSystemList,
  kOutageList,
  kSecurityList,
  kDataLossList,
  kUrgencyList,
  kRoutineList,
  kListCount
};

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class PhraseIndex {
 public:
  PhraseIndex() {
    const std::pair<PhraseListId, const std::vector<std::string>*> lists[] = {
        {kConnectiveList, &kConnectives}, {kErrorList, &kErrorWords}, {kTechnicalList, &kTechnicalTerms},
        {kSystemList, &kSystems},         {kOutageList, &kOutage},    {kSecurityList, &kSecurity},
        {kDataLossList, &kDataLoss},      {kUrgencyList, &kUrgency},  {kRoutineList, &kRoutine}};
    for (const auto& [id, terms] : lists)
      for (const auto& t : *terms) {
        Entry e;
        e.list = id;
        e.name = t;
        std::string body = t;
        const bool prefix = !body.empty() && body.back() == '*';
        if (prefix) body.pop_back();
        for (std::size_t i = 0; i < body.size();) {
          const std::size_t j = std::min(body.find(' ', i), body.size());
          e.words.push_back(body.substr(i, j - i));
          i = j + 1;
        }
        if (prefix)
          prefixes_.push_back(std::move(e));
        else
          by_first_[e.words.front()].push_back(std::move(e));
      }
  }

  struct Counts {
    std::array<std::size_t, kListCount> n{};
    std::set<std::string> systems;  // distinct entries of the systems list
  };

  void count(const std::vector<std::string_view>& tokens, Counts& out) const {
    auto hit = [&](const Entry& e) {
      ++out.n[e.list];
      if (e.list == kSystemList) out.systems.insert(e.name);
    };
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (const auto it = by_first_.find(tokens[i]); it != by_first_.end()) {
        for (const auto& e : it->second) {
          if (i + e.words.size() > tokens.size()) continue;
          bool match = true;
          for (std::size_t k = 1; k < e.words.size() && match; ++k) match = tokens[i + k] == e.words[k];
          if (match) hit(e);
        }
      }
      for (const auto& e : prefixes_)
        if (tokens[i].substr(0, e.words.front().size()) == e.words.front()) hit(e);
    }
  }

 private:
  struct Entry {
    PhraseListId list = kConnectiveList;
    std::string name;
    std::vector<std::string> words;
  };
  std::unordered_map<std::string, std::vector<Entry>, TransparentHash, std::equal_to<>> by_first_;
  std::vector<Entry> prefixes_;
};

// Defined after the lists it reads (same translation unit, so initialised in order).
// Built on first use, not at static initialisation: the lists live in another translation unit,
// whose initialisation order against this one is unspecified.
const PhraseIndex& phraseIndex() {
  static const PhraseIndex index;
  return index;
}

double sat(double x) {
  return std::clamp(x, 0.0, 1.0);
}

}  // namespace

const std::vector<std::string>& DifficultyScorer::signalNames() {
  return kSignalNames;
}

double DifficultyScorer::builtinWeight(const std::string& name) {
  const auto it = kBuiltinWeights.find(name);
  return it == kBuiltinWeights.end() ? 0.0 : it->second;
}

DifficultyScorer::DifficultyScorer(const DifficultyConfig& config)
    : easy_below_(config.easy_below), hard_from_(config.hard_from) {
  for (const auto& name : kSignalNames) weights_.push_back(builtinWeight(name));
  for (const auto& [name, weight] : config.weights) {
    const auto it = std::find(kSignalNames.begin(), kSignalNames.end(), name);
    if (it == kSignalNames.end()) {
      std::string known;
      for (const auto& n : kSignalNames) known += (known.empty() ? "" : ", ") + n;
      throw std::invalid_argument("classifier.difficulty.weights: unknown signal '" + name + "' (known: " + known +
                                  ")");
    }
    weights_[static_cast<std::size_t>(it - kSignalNames.begin())] = weight;
  }
}

Difficulty levelFor(double score, const Thresholds& thresholds) {
  if (score < thresholds.easy_below) return Difficulty::kEasy;
  if (score >= thresholds.hard_from) return Difficulty::kHard;
  return Difficulty::kMedium;
}

Difficulty DifficultyScorer::levelFor(double score) const {
  return classify::levelFor(score, {easy_below_, hard_from_});
}

DifficultyResult DifficultyScorer::score(std::string_view text, std::string_view category) const {
  const std::string norm = normalizeText(text);
  std::vector<std::string_view> tokens;
  for (std::size_t i = 0; i < norm.size();) {
    const std::size_t j = std::min(norm.find(' ', i), norm.size());
    if (j > i) tokens.push_back(std::string_view(norm).substr(i, j - i));
    i = j + 1;
  }
  const std::size_t words = tokens.size();

  // Distinct problems: question marks, enumerations, and connectives that start another issue.
  std::size_t questions = 0;
  for (char c : text)
    if (c == '?') ++questions;
  PhraseIndex::Counts counts;
  phraseIndex().count(tokens, counts);
  const std::size_t connectives = counts.n[kConnectiveList];
  std::size_t enumerations = 0;
  for (std::size_t i = 0; i + 1 < text.size(); ++i)
    if ((i == 0 || text[i - 1] == '\n') &&
        ((text[i] >= '1' && text[i] <= '9' && (text[i + 1] == ')' || text[i + 1] == '.')) || text[i] == '-' ||
         text[i] == '*'))
      ++enumerations;
  const double problems = static_cast<double>(std::max<std::size_t>(questions, 1) - 1) +
                          static_cast<double>(connectives) +
                          static_cast<double>(enumerations > 1 ? enumerations - 1 : 0);

  // Error codes and stack traces work on the raw text too: "Exception in thread", "at com.x.Y(".
  std::size_t errors = counts.n[kErrorList];
  for (std::size_t pos = text.find("\n    at "); pos != std::string_view::npos; pos = text.find("\n    at ", pos + 1))
    ++errors;
  for (std::size_t pos = text.find("\tat "); pos != std::string_view::npos; pos = text.find("\tat ", pos + 1)) ++errors;

  const std::size_t tech = counts.n[kTechnicalList];
  const std::set<std::string>& systems = counts.systems;

  double prior = 0.35;
  if (const auto it = kCategoryPrior.find(std::string(category)); it != kCategoryPrior.end()) prior = it->second;

  const double w = static_cast<double>(words);
  const std::vector<double> values = {
      1.0,
      sat(std::log1p(w / 15.0) / std::log1p(200.0 / 15.0)),
      sat(problems / 3.0),
      sat(static_cast<double>(errors) / 2.0),
      words ? sat(static_cast<double>(tech) / w / 0.15) : 0.0,
      sat(static_cast<double>(counts.n[kOutageList]) / 2.0),
      sat(static_cast<double>(counts.n[kSecurityList]) / 1.5),
      sat(static_cast<double>(counts.n[kDataLossList]) / 1.5),
      sat((static_cast<double>(systems.size()) - 1.0) / 3.0),
      prior,
      sat(static_cast<double>(counts.n[kUrgencyList]) / 2.0),
      sat(static_cast<double>(counts.n[kRoutineList]) / 1.5),
  };
  DifficultyResult r;
  double total = 0;
  for (std::size_t i = 0; i < kSignalNames.size(); ++i) {
    r.signals.push_back({kSignalNames[i], values[i], weights_[i]});
    total += values[i] * weights_[i];
  }
  r.score = sat(total);
  r.level = levelFor(r.score);
  return r;
}

Result<Thresholds> thresholdsForShares(std::vector<double> scores, double easy_share, double medium_share,
                                       double hard_share) {
  if (scores.empty()) return Error::invalidArgument("no scores to calibrate on");
  if (easy_share < 0 || medium_share < 0 || hard_share < 0 ||
      std::abs(easy_share + medium_share + hard_share - 1.0) > 0.01)
    return Error::invalidArgument("shares must be non-negative and sum to 1");
  std::sort(scores.begin(), scores.end());
  const std::size_t n = scores.size();
  // The k-th smallest score starts the next tier; a threshold halfway between neighbours keeps
  // the split stable against rounding.
  auto cut = [&](double share_below) {
    const auto k = static_cast<std::size_t>(std::llround(share_below * static_cast<double>(n)));
    if (k == 0) return scores.front();
    if (k >= n) return std::nextafter(scores.back(), 2.0);
    return (scores[k - 1] + scores[k]) / 2.0;
  };
  Thresholds t{cut(easy_share), cut(easy_share + medium_share)};
  if (t.hard_from < t.easy_below) t.hard_from = t.easy_below;
  return t;
}

Result<std::string> rewriteDifficultyThresholds(const std::string& yaml_text, const Thresholds& thresholds) {
  auto fmt = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", v);
    return std::string(buf);
  };
  std::string out = yaml_text;
  for (const auto& [key, value] : {std::pair<std::string, double>{"easy_below:", thresholds.easy_below},
                                   std::pair<std::string, double>{"hard_from:", thresholds.hard_from}}) {
    std::size_t found = std::string::npos;
    std::size_t count = 0;
    for (std::size_t pos = 0; pos < out.size();) {
      const std::size_t eol = std::min(out.find('\n', pos), out.size());
      const std::size_t first = out.find_first_not_of(" \t", pos);
      if (first < eol && out.compare(first, key.size(), key) == 0) {
        found = first;
        ++count;
      }
      pos = eol + 1;
    }
    if (count != 1)
      return Error::invalidArgument("expected exactly one '" + key + "' line in the config, found " +
                                    std::to_string(count));
    // Replace the value token after the key, keeping spacing and any trailing comment.
    std::size_t v = out.find_first_not_of(" \t", found + key.size());
    std::size_t ve = v;
    while (ve < out.size() && out[ve] != ' ' && out[ve] != '\t' && out[ve] != '\n' && out[ve] != '#' && out[ve] != '\r')
      ++ve;
    if (v >= out.size() || v == ve) return Error::invalidArgument("'" + key + "' has no value to replace");
    out.replace(v, ve - v, fmt(value));
  }
  return out;
}

}  // namespace ticketflow::classify
