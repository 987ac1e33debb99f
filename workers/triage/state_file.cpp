#include "state_file.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ticketflow/core/crypto.hpp"

namespace ticketflow::triage {
namespace {

using nlohmann::json;

json outcomeJson(const TicketOutcome& o) {
  return {{"id", o.ticket_id},
          {"tenant", o.tenant},
          {"subject", o.subject},
          {"category", o.category},
          {"answer_category", o.answer_category},
          {"label", o.label},
          {"routed_tier", o.routed_tier},
          {"moves", o.moves},
          {"difficulty", difficultyName(o.difficulty)},
          {"confidence", o.confidence},
          {"tier", o.tier},
          {"model", o.model},
          {"cache", cacheStatusName(o.cache)},
          {"cache_source", o.cache_source},
          {"cost", o.cost_micro_usd},
          {"frontier", o.frontier_micro_usd},
          {"input_tokens", o.usage.input_tokens},
          {"output_tokens", o.usage.output_tokens},
          {"latency_ms", o.latency_ms},
          {"degraded", o.degraded},
          {"needs_human", o.needs_human},
          {"needs_human_reason", o.needs_human_reason},
          {"dead_lettered", o.dead_lettered},
          {"error", o.error}};
}

TicketOutcome outcomeFrom(const json& j) {
  TicketOutcome o;
  o.ticket_id = j.value("id", "");
  o.tenant = j.value("tenant", "");
  o.subject = j.value("subject", "");
  o.category = j.value("category", "");
  o.answer_category = j.value("answer_category", "");
  o.label = j.value("label", "");
  o.routed_tier = j.value("routed_tier", "");
  o.moves = j.value("moves", "");
  o.difficulty = parseDifficulty(j.value("difficulty", "medium")).value_or(Difficulty::kMedium);
  o.confidence = j.value("confidence", 0.0);
  o.tier = j.value("tier", "");
  o.model = j.value("model", "");
  const std::string cache = j.value("cache", "miss");
  o.cache = parseCacheStatus(cache);
  o.cache_source = j.value("cache_source", "");
  o.cost_micro_usd = j.value("cost", MicroUsd{0});
  o.frontier_micro_usd = j.value("frontier", MicroUsd{0});
  o.usage.input_tokens = j.value("input_tokens", std::int64_t{0});
  o.usage.output_tokens = j.value("output_tokens", std::int64_t{0});
  o.latency_ms = j.value("latency_ms", std::int64_t{-1});
  o.degraded = j.value("degraded", false);
  o.needs_human = j.value("needs_human", false);
  o.needs_human_reason = j.value("needs_human_reason", "");
  o.dead_lettered = j.value("dead_lettered", false);
  o.error = j.value("error", "");
  return o;
}

}  // namespace

StateFile::StateFile(const std::string& path, const std::string& source) : path_(path) {
  if (path_.empty()) {
    run_id_ = randomTraceId().substr(0, 16);
    return;
  }
  std::ifstream in(path_);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object()) continue;  // a torn last line from an interruption
    if (j.contains("run")) {
      run_id_ = j["run"].get<std::string>();
      if (j.value("source", "") != source)
        throw std::runtime_error(path_ + " belongs to a run over " + j.value("source", "?") + ", not " + source +
                                 " (choose another --state file)");
    } else if (j.contains("submitted")) {
      for (const auto& k : j["submitted"]) submitted_.insert(k.get<std::string>());
    } else if (j.contains("outcome")) {
      TicketOutcome o = outcomeFrom(j["outcome"]);
      outcomes_[ticketKey(o.tenant, o.ticket_id)] = std::move(o);
    }
  }
  resumed_ = !run_id_.empty();
  out_.open(path_, std::ios::app);
  if (!out_) throw std::runtime_error("cannot write the state file " + path_);
  if (!resumed_) {
    run_id_ = randomTraceId().substr(0, 16);
    append({{"run", run_id_}, {"source", source}});
  }
}

void StateFile::recordSubmitted(const std::vector<std::string>& keys) {
  std::lock_guard lock(mutex_);
  for (const auto& k : keys) submitted_.insert(k);
  append({{"submitted", keys}});
}

void StateFile::recordOutcome(const TicketOutcome& o) {
  std::lock_guard lock(mutex_);
  outcomes_[ticketKey(o.tenant, o.ticket_id)] = o;
  append({{"outcome", outcomeJson(o)}});
}

void StateFile::append(const json& j) {
  if (out_.is_open()) out_ << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
}

}  // namespace ticketflow::triage
