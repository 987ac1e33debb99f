#include "simulator.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/json_fields.hpp"
#include "ticketflow/domain/ticket_file.hpp"
#include "ticketflow/embed/embedder.hpp"

namespace ticketflow::sim {
namespace {

using nlohmann::json;

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::instance().steadyNow().time_since_epoch())
      .count();
}

// FNV-1a 64: stable across platforms, so replies are reproducible anywhere.
std::uint64_t stableHash(const std::string& s, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// The key of an "Authorization: Bearer <key>" header; "" without one.
std::string bearerToken(const http::HttpRequest& request) {
  const std::string auth = request.header("authorization");
  return auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

ModelProfile profileFrom(const json& j, ModelProfile base) {
  readIfPresent(j, "latency_median_ms", base.latency_median_ms);
  readIfPresent(j, "latency_p99_ms", base.latency_p99_ms);
  readIfPresent(j, "chars_per_token", base.chars_per_token);
  readIfPresent(j, "rpm", base.rpm);
  readIfPresent(j, "tpm", base.tpm);
  if (auto f = j.find("faults"); f != j.end()) {
    readIfPresent(*f, "rate_429", base.faults.rate_429);
    readIfPresent(*f, "retry_after_s", base.faults.retry_after_s);
    readIfPresent(*f, "rate_500", base.faults.rate_500);
    readIfPresent(*f, "rate_503", base.faults.rate_503);
    readIfPresent(*f, "rate_hang", base.faults.rate_hang);
    readIfPresent(*f, "hang_s", base.faults.hang_s);
    readIfPresent(*f, "rate_malformed", base.faults.rate_malformed);
    readIfPresent(*f, "rate_fenced", base.faults.rate_fenced);
    readIfPresent(*f, "rate_prose", base.faults.rate_prose);
  }
  if (auto c = j.find("competence"); c != j.end()) {
    Competence competence = base.competence.value_or(Competence{});
    readIfPresent(*c, "right_easy", competence.right_easy);
    readIfPresent(*c, "right_medium", competence.right_medium);
    readIfPresent(*c, "right_hard", competence.right_hard);
    readIfPresent(*c, "category_skill", competence.category_skill);
    readIfPresent(*c, "overconfidence", competence.overconfidence);
    readIfPresent(*c, "slope", competence.slope);
    readIfPresent(*c, "noise", competence.noise);
    for (double p : {competence.right_easy, competence.right_medium, competence.right_hard})
      if (p < 0 || p > 1)
        throw ConfigError("", "competence", "right_easy, right_medium and right_hard are probabilities");
    if (competence.noise < 0) throw ConfigError("", "competence.noise", "must not be negative");
    base.competence = competence;
  }
  return base;
}

// The ticket text inside the prompt's delimited user-data block, or the whole message.
std::string ticketText(const std::string& user_content) {
  const auto open = user_content.find("<ticket>");
  const auto close = user_content.rfind("</ticket>");
  if (open != std::string::npos && close != std::string::npos && close > open)
    return user_content.substr(open + 8, close - open - 8);
  return user_content;
}

std::string messageText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content)
      if (part.is_object() && part.value("type", "") == "text") out += part.value("text", "");
  }
  return out;
}

json openAiError(const std::string& type, const std::string& message) {
  return {{"error", {{"message", message}, {"type", type}, {"code", type}}}};
}

json anthropicError(const std::string& type, const std::string& message) {
  return {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
}

}  // namespace

SimulatorOptions loadSimulatorOptions(const std::string& profiles_yaml, const std::string& profiles_source,
                                      const std::string& runbooks_yaml, const std::string& runbooks_source) {
  SimulatorOptions options;
  const json profiles = parseYamlDocument(profiles_yaml, profiles_source);
  if (!profiles.is_object() || !profiles.contains("profiles") || !profiles["profiles"].is_object())
    throw ConfigError(profiles_source, "profiles", "a mapping of model id -> profile is required");
  std::string at = "profiles";
  try {
    readIfPresent(profiles, "seed", options.seed);
    if (profiles["profiles"].contains("default")) {
      at = "profiles.default";
      options.default_profile = profileFrom(profiles["profiles"]["default"], options.default_profile);
    }
    for (const auto& [model, p] : profiles["profiles"].items()) {
      at = "profiles." + model;
      if (model != "default") options.profiles[model] = profileFrom(p, options.default_profile);
    }
  } catch (const json::exception& e) {
    throw ConfigError(profiles_source, at, std::string("wrong type: ") + e.what());
  } catch (const ConfigError& e) {
    throw ConfigError(profiles_source, at + "." + e.field(), e.reason());
  }
  const json runbooks = parseYamlDocument(runbooks_yaml, runbooks_source);
  if (!runbooks.is_object() || !runbooks.contains("runbooks") || !runbooks["runbooks"].is_array())
    throw ConfigError(runbooks_source, "runbooks", "a list of runbook entries is required");
  for (std::size_t i = 0; i < runbooks["runbooks"].size(); ++i) {
    const json& r = runbooks["runbooks"][i];
    try {
      Runbook rb;
      rb.id = r.at("id");
      readIfPresent(r, "keywords", rb.keywords);
      for (auto& k : rb.keywords) k = lower(k);
      rb.category = r.at("category");
      rb.summary = r.at("summary");
      rb.reply = r.at("reply");
      readIfPresent(r, "steps", rb.steps);
      readIfPresent(r, "needs_human", rb.needs_human);
      readIfPresent(r, "needs_human_reason", rb.needs_human_reason);
      readIfPresent(r, "confidence", rb.confidence);
      options.runbooks.push_back(std::move(rb));
    } catch (const json::exception& e) {
      throw ConfigError(runbooks_source, "runbooks[" + std::to_string(i) + "]", std::string("bad entry: ") + e.what());
    }
  }
  if (options.runbooks.empty()) throw ConfigError(runbooks_source, "runbooks", "at least one entry is required");
  return options;
}

ProviderSimulator::ProviderSimulator(SimulatorOptions options) : options_(std::move(options)), rng_(options_.seed) {
  std::set<std::string> categories;
  for (const auto& rb : options_.runbooks) categories.insert(rb.category);
  for (const auto& [key, label] : options_.labels) categories.insert(label);
  categories_.assign(categories.begin(), categories.end());
  if (!options_.request_log.empty()) {
    log_.open(options_.request_log, std::ios::app);
    if (!log_) throw std::runtime_error("cannot write the request log " + options_.request_log);
  }
  http::HttpServerOptions server_options;
  server_options.port = options_.port;
  server_options.max_threads = options_.max_threads;
  server_ =
      std::make_unique<http::HttpServer>(server_options, [this](const http::HttpRequest& r) { return handle(r); });
}

ProviderSimulator::~ProviderSimulator() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  server_.reset();
}

TicketLabels labelsOf(const std::vector<Ticket>& tickets) {
  TicketLabels labels;
  for (const auto& t : tickets)
    if (std::string label = ticketLabel(t); !label.empty()) labels[labelKey(t.body)] = std::move(label);
  return labels;
}

BilledRequests billedFromRequestLog(const Config& config, const std::string& request_log) {
  std::ifstream in(request_log);
  BilledRequests billed;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("status", 0) != 200 || !j.contains("input_tokens") ||
        j.value("fault", "") == "malformed")
      continue;
    const ModelConfig* model = nullptr;
    for (const auto& m : config.models)
      if (m.model_id == j.value("model", "")) model = &m;
    if (!model) {
      ++billed.unknown_models;
      continue;
    }
    billed.micro_usd +=
        model->costMicroUsd(j["input_tokens"].get<std::int64_t>(), j["output_tokens"].get<std::int64_t>());
    ++billed.requests;
  }
  return billed;
}

SimulatorStats ProviderSimulator::stats() const {
  return {requests_.load(),  ok_.load(),           rate_limited_.load(),   server_errors_.load(), hangs_.load(),
          malformed_.load(), unauthorized_.load(), max_concurrent_.load(), embeddings_.load(),    in_flight_.load()};
}

bool ProviderSimulator::keyAccepted(const std::string& key) const {
  return !key.empty() && (options_.expected_api_key.empty() || key == options_.expected_api_key);
}

const ModelProfile& ProviderSimulator::profileFor(const std::string& model) const {
  auto it = options_.profiles.find(model);
  return it == options_.profiles.end() ? options_.default_profile : it->second;
}

void ProviderSimulator::pause(double ms) {
  if (ms <= 0) return;
  std::unique_lock lock(stop_mutex_);
  stop_cv_.wait_for(lock, std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000)),
                    [this] { return stopping_; });
}

void ProviderSimulator::log(const json& entry) {
  if (!log_.is_open()) return;
  std::lock_guard lock(log_mutex_);
  log_ << entry.dump() << "\n" << std::flush;
}

http::HttpResponse ProviderSimulator::handle(const http::HttpRequest& request) {
  const auto started = nowMs();
  if (request.method == "GET" && (request.path == "/healthz" || request.path == "/")) {
    return {200, {}, R"({"status":"ok","simulated":true})"};
  }
  if (request.method == "POST" && request.path.ends_with("/embeddings")) return handleEmbeddings(request);
  const bool anthropic = request.path.ends_with("/messages");
  const bool openai = request.path.ends_with("/chat/completions");
  if (request.method != "POST" || (!anthropic && !openai)) {
    return {404, {}, openAiError("not_found", "unknown endpoint " + request.path).dump()};
  }
  requests_.fetch_add(1);
  const std::int64_t now_in_flight = in_flight_.fetch_add(1) + 1;
  for (auto seen = max_concurrent_.load();
       now_in_flight > seen && !max_concurrent_.compare_exchange_weak(seen, now_in_flight);) {
  }
  struct InFlight {
    std::atomic<std::int64_t>& counter;
    ~InFlight() { counter.fetch_sub(1); }
  } in_flight_guard{in_flight_};
  auto errorBody = [&](const std::string& openai_type, const std::string& anthropic_type, const std::string& msg) {
    return (anthropic ? anthropicError(anthropic_type, msg) : openAiError(openai_type, msg)).dump();
  };
  json entry = {{"protocol", anthropic ? "anthropic" : "openai"}, {"path", request.path}};
  auto finish = [&](http::HttpResponse response, const std::string& fault) {
    entry["status"] = response.status;
    entry["fault"] = fault;
    entry["latency_ms"] = nowMs() - started;
    if (options_.log_bodies) entry["body"] = request.body;
    log(entry);
    return response;
  };
  if (unavailable_.load()) {
    server_errors_.fetch_add(1);
    return finish({503, {}, errorBody("server_error", "overloaded_error", "simulated provider outage")}, "outage");
  }

  // Authentication: the key is checked, never logged.
  const std::string key = anthropic ? request.header("x-api-key") : bearerToken(request);
  entry["auth"] = !key.empty();
  if (!keyAccepted(key) || (anthropic && request.header("anthropic-version").empty())) {
    unauthorized_.fetch_add(1);
    return finish({401, {}, errorBody("invalid_api_key", "authentication_error", "invalid or missing API key")},
                  "auth");
  }

  json body = json::parse(request.body, nullptr, false);
  if (!body.is_object() || !body.contains("model") || !body["model"].is_string() || !body.contains("messages") ||
      !body["messages"].is_array()) {
    return finish(
        {400, {}, errorBody("invalid_request_error", "invalid_request_error", "model and messages are required")},
        "bad_request");
  }
  const std::string model = body["model"];
  entry["model"] = model;
  const ModelProfile& profile = profileFor(model);

  std::string prompt_text, user_text;
  if (anthropic && body.contains("system")) prompt_text += messageText(body["system"]);
  for (const auto& m : body["messages"]) {
    const std::string text = messageText(m.value("content", json()));
    prompt_text += text;
    if (m.value("role", "") == "user") user_text = text;  // the last user message holds the ticket
  }
  const auto input_tokens = static_cast<std::int64_t>(std::ceil(prompt_text.size() / profile.chars_per_token));

  // Rate limits over a sliding 60 s window per model.
  std::int64_t retry_after_ms = 0, remaining_requests = -1, remaining_tokens = -1;
  {
    std::lock_guard lock(windows_mutex_);
    auto& window = windows_[model];
    const auto now = nowMs();
    while (!window.empty() && window.front().first <= now - 60000) window.pop_front();
    std::int64_t tokens = 0;
    for (const auto& [t, n] : window) tokens += n;
    const bool over_rpm = profile.rpm > 0 && static_cast<std::int64_t>(window.size()) >= profile.rpm;
    const bool over_tpm = profile.tpm > 0 && tokens + input_tokens > profile.tpm;
    if (over_rpm || over_tpm) {
      retry_after_ms = window.empty() ? 1000 : std::max<std::int64_t>(1, window.front().first + 60000 - now);
    } else {
      window.emplace_back(now, input_tokens);
    }
    if (profile.rpm > 0)
      remaining_requests = std::max<std::int64_t>(0, profile.rpm - static_cast<std::int64_t>(window.size()));
    if (profile.tpm > 0) remaining_tokens = std::max<std::int64_t>(0, profile.tpm - tokens - input_tokens);
  }
  std::map<std::string, std::string> headers;
  const std::string prefix = anthropic ? "anthropic-ratelimit-" : "x-ratelimit-";
  if (profile.rpm > 0) {
    headers[prefix + (anthropic ? "requests-limit" : "limit-requests")] = std::to_string(profile.rpm);
    headers[prefix + (anthropic ? "requests-remaining" : "remaining-requests")] = std::to_string(remaining_requests);
  }
  if (profile.tpm > 0) {
    headers[prefix + (anthropic ? "tokens-limit" : "limit-tokens")] = std::to_string(profile.tpm);
    headers[prefix + (anthropic ? "tokens-remaining" : "remaining-tokens")] = std::to_string(remaining_tokens);
  }
  if (retry_after_ms > 0) {
    const auto secs = (retry_after_ms + 999) / 1000;
    headers["retry-after"] = std::to_string(secs);
    headers[anthropic ? "anthropic-ratelimit-requests-reset" : "x-ratelimit-reset-requests"] =
        std::to_string(secs) + "s";
    rate_limited_.fetch_add(1);
    return finish(
        {429, headers, errorBody("rate_limit_exceeded", "rate_limit_error", "rate limit reached for " + model)},
        "rate_limit");
  }

  // Latency and faults, drawn from the seeded generator.
  double latency_ms = 0, draw = 1.0;
  {
    std::lock_guard lock(rng_mutex_);
    const double sigma = std::log(std::max(profile.latency_p99_ms, profile.latency_median_ms + 1) /
                                  std::max(profile.latency_median_ms, 1.0)) /
                         2.326;
    std::normal_distribution<double> normal(0.0, 1.0);
    latency_ms = profile.latency_median_ms * std::exp(sigma * normal(rng_)) * options_.latency_scale;
    draw = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }
  const FaultRates& f = profile.faults;
  std::string fault;
  if (options_.faults_enabled) {
    double edge = 0;
    for (const auto& [rate, name] : std::vector<std::pair<double, const char*>>{{f.rate_429, "429"},
                                                                                {f.rate_500, "500"},
                                                                                {f.rate_503, "503"},
                                                                                {f.rate_hang, "hang"},
                                                                                {f.rate_malformed, "malformed"},
                                                                                {f.rate_fenced, "fenced"},
                                                                                {f.rate_prose, "prose"}}) {
      edge += rate;
      if (fault.empty() && draw < edge) fault = name;
    }
  }
  if (fault == "429") {
    headers["retry-after"] = std::to_string(f.retry_after_s);
    rate_limited_.fetch_add(1);
    return finish({429, headers, errorBody("rate_limit_exceeded", "rate_limit_error", "rate limit reached (injected)")},
                  fault);
  }
  if (fault == "hang") {
    hangs_.fetch_add(1);
    pause(f.hang_s * 1000.0);
    return finish({504, headers, errorBody("timeout", "api_error", "simulated hang ended")}, fault);
  }
  pause(latency_ms);
  if (fault == "500" || fault == "503") {
    server_errors_.fetch_add(1);
    return finish({fault == "500" ? 500 : 503, headers,
                   errorBody(fault == "500" ? "server_error" : "service_unavailable",
                             fault == "500" ? "api_error" : "overloaded_error", "simulated " + fault)},
                  fault);
  }

  const json answer = answerFor(ticketText(user_text), model, profile, entry);
  const std::uint64_t h = stableHash(lower(ticketText(user_text)) + "\x1f" + model, options_.seed);
  std::string content = answer.dump();
  if (fault == "malformed") {
    content = content.substr(0, content.size() / 2);  // cut mid-object, as a truncated reply would be
    malformed_.fetch_add(1);
  } else if (fault == "fenced") {
    content = "```json\n" + content + "\n```";
  } else if (fault == "prose") {
    content = "Here is my triage of the ticket:\n" + content + "\nLet me know if you need anything else.";
  }
  const auto output_tokens = static_cast<std::int64_t>(std::ceil(content.size() / profile.chars_per_token));
  entry["input_tokens"] = input_tokens;
  entry["output_tokens"] = output_tokens;
  const std::string id = std::to_string(h % 1000000007ULL);
  json response;
  if (anthropic) {
    response = {{"id", "msg_sim_" + id},
                {"type", "message"},
                {"role", "assistant"},
                {"model", model},
                {"content", json::array({{{"type", "text"}, {"text", content}}})},
                {"stop_reason", "end_turn"},
                {"usage", {{"input_tokens", input_tokens}, {"output_tokens", output_tokens}}}};
  } else {
    response = {
        {"id", "chatcmpl-sim-" + id},
        {"object", "chat.completion"},
        {"created",
         std::chrono::duration_cast<std::chrono::seconds>(SystemClock::instance().now().time_since_epoch()).count()},
        {"model", model},
        {"system_fingerprint", "ticketflow-simulator"},
        {"choices",
         json::array(
             {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", content}}}, {"finish_reason", "stop"}}})},
        {"usage",
         {{"prompt_tokens", input_tokens},
          {"completion_tokens", output_tokens},
          {"total_tokens", input_tokens + output_tokens}}}};
  }
  ok_.fetch_add(1);
  headers["x-ticketflow-simulated"] = "true";
  return finish({200, headers, response.dump()}, fault);
}

const Runbook* ProviderSimulator::runbookOfCategory(const std::string& category) const {
  for (const auto& rb : options_.runbooks)
    if (rb.category == category && !rb.keywords.empty()) return &rb;
  return nullptr;
}

json ProviderSimulator::answerFor(const std::string& ticket_block, const std::string& model,
                                  const ModelProfile& profile, json& log_entry) const {
  // The runbook with the most keyword hits in the ticket text; the last (general) one when none.
  const std::string text = lower(ticket_block);
  const Runbook* best = &options_.runbooks.back();
  int best_hits = 0;
  for (const auto& rb : options_.runbooks) {
    int hits = 0;
    for (const auto& k : rb.keywords) hits += text.find(k) != std::string::npos ? 1 : 0;
    if (hits > best_hits) {
      best_hits = hits;
      best = &rb;
    }
  }
  auto draw = [&](const char* what) { return stableHash(text + "\x1f" + what + "\x1f" + model, options_.seed); };
  const Runbook* shown = best;
  std::string category = best->category;
  bool needs_human = best->needs_human;
  double confidence = 0;
  if (!profile.competence) {
    const double jitter = (static_cast<double>(draw("jitter") % 1001) / 1000.0 - 0.5) * 0.1;  // +-0.05
    confidence = std::clamp(best->confidence + jitter, 0.0, 1.0);
  } else {
    const Competence& c = *profile.competence;
    const auto body_at = ticket_block.find("Body:\n");
    const std::string body = body_at == std::string::npos ? ticket_block : ticket_block.substr(body_at + 6);
    std::string truth = best->category;
    if (auto it = options_.labels.find(labelKey(body)); it != options_.labels.end()) truth = it->second;
    const double difficulty = latentDifficulty(text, best_hits > 0, options_.seed);
    const double p_right = rightProbability(c, difficulty, truth);
    const bool right = uniformFrom(draw("right")) < p_right;
    confidence = statedConfidence(c, p_right, normalFrom(draw("confidence-a"), draw("confidence-b")));
    category = truth;
    if (best->category != truth)
      shown = runbookOfCategory(truth) ? runbookOfCategory(truth) : &options_.runbooks.back();
    if (!right && categories_.size() > 1) {
      // Another category, then a runbook of it (or the general one).
      const auto at = std::find(categories_.begin(), categories_.end(), truth);
      const std::size_t skip = 1 + draw("wrong") % (categories_.size() - 1);
      const std::size_t from = at == categories_.end() ? 0 : static_cast<std::size_t>(at - categories_.begin());
      category = categories_[(from + skip) % categories_.size()];
      shown = runbookOfCategory(category) ? runbookOfCategory(category) : &options_.runbooks.back();
    }
    needs_human = shown->needs_human;
    if (!right && uniformFrom(draw("flip")) < 1.0 / 3) needs_human = !needs_human;
    log_entry["true_category"] = truth;
    log_entry["difficulty"] = std::round(difficulty * 1000) / 1000;
    log_entry["right"] = right && category == truth;
  }
  json answer = {{"summary", shown->summary},
                 {"category_check", category},
                 {"reply", "[simulated reply from " + model + "] " + shown->reply},
                 {"resolution_steps", shown->steps},
                 {"needs_human", needs_human},
                 {"confidence", confidence}};
  if (needs_human)
    answer["needs_human_reason"] = shown->needs_human_reason.empty() ? std::string("An agent must act on this request.")
                                                                     : shown->needs_human_reason;
  return answer;
}

// OpenAI's embeddings API: the built-in hashing embedder's vector (so near-duplicate texts get
// near vectors, as from a real model), `dimensions` of them (1536 when the request names none,
// text-embedding-3-small's default). No latency, no faults.
http::HttpResponse ProviderSimulator::handleEmbeddings(const http::HttpRequest& request) {
  embeddings_.fetch_add(1);
  json entry = {{"protocol", "openai"}, {"path", request.path}};
  auto finish = [&](http::HttpResponse response) {
    entry["status"] = response.status;
    log(entry);
    return response;
  };
  if (!keyAccepted(bearerToken(request))) {
    unauthorized_.fetch_add(1);
    return finish({401, {}, openAiError("invalid_api_key", "invalid or missing API key").dump()});
  }
  const json body = json::parse(request.body, nullptr, false);
  if (!body.is_object() || !body.contains("model") || !body["model"].is_string() || !body.contains("input")) {
    return finish({400, {}, openAiError("invalid_request_error", "model and input are required").dump()});
  }
  std::vector<std::string> inputs;
  if (body["input"].is_string())
    inputs.push_back(body["input"]);
  else if (body["input"].is_array())
    for (const auto& item : body["input"])
      if (item.is_string()) inputs.push_back(item);
  const auto dimensions = body.value("dimensions", 1536);
  if (inputs.empty() || dimensions < 1 || dimensions > 8192) {
    return finish(
        {400,
         {},
         openAiError("invalid_request_error", "input must be a string or strings; 1 <= dimensions <= 8192").dump()});
  }
  entry["model"] = body["model"];
  const embed::HashingEmbedder embedder(dimensions);
  json data = json::array();
  std::int64_t tokens = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto vector = embedder.embed(inputs[i]);
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vector ? *vector : std::vector<float>()}});
    tokens += static_cast<std::int64_t>((inputs[i].size() + 3) / 4);
  }
  json response = {{"object", "list"},
                   {"data", data},
                   {"model", body["model"]},
                   {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
  return finish({200, {{"x-ticketflow-simulated", "true"}}, response.dump()});
}

}  // namespace ticketflow::sim
