#pragma once
// Text normalisation for the classifier (text_normalize.cpp): lower case, typed tokens for
// numbers, error codes, addresses and paths. common/src/classify only; normalizeText() in
// text_features.hpp is the public form.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ticketflow::classify {

// Normalised form is " tok tok tok " with a space before and after every token; `starts` and
// `ends` (when given) receive each token's byte range in it.
void normalizeInto(std::string_view text, std::string& out, std::vector<std::uint32_t>* starts,
                   std::vector<std::uint32_t>* ends);

}  // namespace ticketflow::classify
