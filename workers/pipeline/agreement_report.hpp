#pragma once
// Shadow evaluation's figures as a helpdesk lead reads them: each tier's agreement with the
// reference tier per category (category, needs_human, both) with 95% Wilson intervals, and the
// estimated agreement of all final model answers (each tier x category weighted by how many final
// answers it gave; the reference tier agrees with itself). `ticketflow eval routing` prints the
// text; the triage report carries the HTML.

#include <cstdint>
#include <string>

#include "ticketflow/redis/agreement_store.hpp"

namespace ticketflow::pipeline {

struct FinalAgreement {
  std::int64_t answered = 0;  // final model answers counted
  std::int64_t compared = 0;  // shadow comparisons behind the estimate
  double category = 0, needs_human = 0, both = 0;
  double both_lower = 0, both_upper = 0;  // 95%, normal approximation over the cells
};

// Text for an HTML page: & < > " ' as entities.
std::string htmlEscape(const std::string& s);

FinalAgreement finalAgreement(const redis::AgreementTable& table, const std::string& reference_tier);
std::string agreementText(const redis::AgreementTable& table, const std::string& reference_tier);
std::string agreementHtml(const redis::AgreementTable& table, const std::string& reference_tier);

}  // namespace ticketflow::pipeline
