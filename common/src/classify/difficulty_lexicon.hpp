#pragma once
// The difficulty scorer's word and phrase lists: on normalised text (lower case, typed tokens
// such as _num_ and _errcode_), matched as whole words or whole phrases; an entry ending in '*'
// matches any word starting with it. common/src/classify only.
#include <string>
#include <vector>

namespace ticketflow::classify::difficulty_lexicon {

extern const std::vector<std::string> kTechnicalTerms;
extern const std::vector<std::string> kOutage;
extern const std::vector<std::string> kSecurity;
extern const std::vector<std::string> kDataLoss;
extern const std::vector<std::string> kSystems;
extern const std::vector<std::string> kUrgency;
extern const std::vector<std::string> kRoutine;
extern const std::vector<std::string> kConnectives;
extern const std::vector<std::string> kErrorWords;

}  // namespace ticketflow::classify::difficulty_lexicon
