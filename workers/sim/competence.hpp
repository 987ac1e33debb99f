#pragma once
// The simulator's competence model: whether a simulated model's answer to a ticket is right, and
// how sure the model says it is. A measuring instrument for routing and escalation, so it knows
// nothing of ticketflow's classifier or difficulty scorer:
//
// - Latent difficulty d in [0, 1], the simulator's own: half a per-ticket draw (what makes one
//   ticket hard and another easy is mostly invisible in its text), three tenths its length (long
//   tickets carry several issues), two tenths whether any runbook's keywords match at all.
// - P(right) = right_easy, right_medium, right_hard at d = 0, 0.5, 1 (linear between), moved by
//   category_skill[true category] on the logit scale (negative: the model is poor at it).
// - Stated confidence = sigmoid(slope * logit(P(right)) + overconfidence + noise * z), z ~ N(0, 1):
//   verbalised confidence sits high and flat whatever the chance of being right (docs/simulator.md
//   cites the figures behind the defaults).
// - Right means: the category the ticket truly has (its label when the simulator was given one,
//   else the best-matching runbook's), that runbook's needs_human and its content. A wrong answer
//   names another category, a runbook of that category (or the general one), and flips
//   needs_human one time in three.
// Every draw is a hash of (ticket text, model, seed): the same request gets the same answer, as
// from a model at temperature 0.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ticketflow::sim {

struct Competence {
  double right_easy = 0.9;
  double right_medium = 0.8;
  double right_hard = 0.6;
  std::map<std::string, double> category_skill;  // true category -> logit shift
  double overconfidence = 1.0;
  double slope = 0.5;
  double noise = 0.7;
};

// The label table's key for a ticket body: its first 160 bytes, lower-cased, runs of white space
// as one space. The simulator finds the body in the prompt and looks it up.
std::string labelKey(std::string_view body);
using TicketLabels = std::unordered_map<std::string, std::string>;  // labelKey -> category

double latentDifficulty(const std::string& lowered_text, bool runbook_matched, std::uint64_t seed);
double rightProbability(const Competence& c, double difficulty, const std::string& true_category);
double statedConfidence(const Competence& c, double right_probability, double standard_normal);
// A uniform draw in [0, 1) and a standard normal one, from a 64-bit hash.
double uniformFrom(std::uint64_t hash);
double normalFrom(std::uint64_t hash_a, std::uint64_t hash_b);

}  // namespace ticketflow::sim
