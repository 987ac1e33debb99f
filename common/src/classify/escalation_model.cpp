#include "ticketflow/classify/escalation_model.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "ticketflow/core/embedded.hpp"

namespace ticketflow::classify {

namespace {

constexpr std::size_t kInputs = kEscalationFeatureNames.size();
constexpr const char* kFormat = "ticketflow-escalation";
constexpr int kVersion = 1;

double sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

nlohmann::json weightsJson(const std::vector<double>& w, int examples) {
  nlohmann::json rounded = nlohmann::json::array();
  for (double v : w) rounded.push_back(std::round(v * 1e6) / 1e6);
  return {{"weights", rounded}, {"examples", examples}};
}

// Solves A x = b (A symmetric positive definite, small) by Gaussian elimination with pivoting.
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const std::size_t n = b.size();
  for (std::size_t col = 0; col < n; ++col) {
    std::size_t pivot = col;
    for (std::size_t r = col + 1; r < n; ++r)
      if (std::fabs(a[r][col]) > std::fabs(a[pivot][col])) pivot = r;
    std::swap(a[col], a[pivot]);
    std::swap(b[col], b[pivot]);
    if (std::fabs(a[col][col]) < 1e-12) continue;  // a feature that never varies: leave its weight
    for (std::size_t r = col + 1; r < n; ++r) {
      const double f = a[r][col] / a[col][col];
      for (std::size_t c = col; c < n; ++c) a[r][c] -= f * a[col][c];
      b[r] -= f * b[col];
    }
  }
  std::vector<double> x(n, 0.0);
  for (std::size_t i = n; i-- > 0;) {
    if (std::fabs(a[i][i]) < 1e-12) continue;
    double s = b[i];
    for (std::size_t c = i + 1; c < n; ++c) s -= a[i][c] * x[c];
    x[i] = s / a[i][i];
  }
  return x;
}

// L2-regularised logistic regression by Newton's method (IRLS): a few thousand examples of ten
// features converge in a handful of steps, with no learning rate to choose.
std::vector<double> fit(const std::vector<const AgreementLabel*>& examples, const EscalationTrainOptions& options) {
  std::vector<double> w(kInputs, 0.0);
  if (examples.empty()) return w;
  std::vector<std::vector<double>> x;
  x.reserve(examples.size());
  for (const auto* e : examples) x.push_back(escalationInputs(e->features));
  for (int it = 0; it < options.iterations; ++it) {
    std::vector<std::vector<double>> hessian(kInputs, std::vector<double>(kInputs, 0.0));
    std::vector<double> gradient(kInputs, 0.0);
    for (std::size_t i = 0; i < x.size(); ++i) {
      double z = 0;
      for (std::size_t k = 0; k < kInputs; ++k) z += w[k] * x[i][k];
      const double p = sigmoid(z);
      const double y = examples[i]->agreed ? 1.0 : 0.0;
      const double s = std::max(p * (1 - p), 1e-9);
      for (std::size_t a = 0; a < kInputs; ++a) {
        gradient[a] += (p - y) * x[i][a];
        for (std::size_t b = 0; b < kInputs; ++b) hessian[a][b] += s * x[i][a] * x[i][b];
      }
    }
    const double l2 = options.l2 * static_cast<double>(x.size());
    for (std::size_t k = 1; k < kInputs; ++k) {  // the bias is not shrunk
      gradient[k] += l2 * w[k];
      hessian[k][k] += l2;
    }
    const auto step = solve(hessian, gradient);
    double largest = 0;
    for (std::size_t k = 0; k < kInputs; ++k) {
      w[k] -= step[k];
      largest = std::max(largest, std::fabs(step[k]));
    }
    if (largest < 1e-7) break;
  }
  return w;
}

}  // namespace

nlohmann::json AnswerFeatures::toJson() const {
  return {{"stated_confidence", stated_confidence},
          {"category_agrees", category_agrees},
          {"classifier_confidence", classifier_confidence},
          {"classifier_prob_of_answer", classifier_prob_of_answer},
          {"repaired", repaired},
          {"needs_human", needs_human},
          {"steps", steps},
          {"difficulty_score", difficulty_score}};
}

Result<AnswerFeatures> AnswerFeatures::fromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Error::invalidArgument("answer features: not an object");
  AnswerFeatures f;
  try {
    f.stated_confidence = j.at("stated_confidence").get<double>();
    f.category_agrees = j.at("category_agrees").get<bool>();
    f.classifier_confidence = j.at("classifier_confidence").get<double>();
    f.classifier_prob_of_answer = j.at("classifier_prob_of_answer").get<double>();
    f.repaired = j.value("repaired", false);
    f.needs_human = j.at("needs_human").get<bool>();
    f.steps = j.value("steps", 0);
    f.difficulty_score = j.value("difficulty_score", 0.0);
  } catch (const nlohmann::json::exception& e) {
    return Error::invalidArgument(std::string("answer features: ") + e.what());
  }
  return f;
}

nlohmann::json AgreementLabel::toJson() const {
  return {{"tier", tier}, {"category", category}, {"features", features.toJson()}, {"agreed", agreed}};
}

Result<AgreementLabel> AgreementLabel::fromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Error::invalidArgument("label: not a JSON object");
  if (!j.contains("tier") || !j["tier"].is_string() || !j.contains("agreed") || !j["agreed"].is_boolean())
    return Error::invalidArgument("label: needs a string tier and a boolean agreed");
  auto features = AnswerFeatures::fromJson(j.value("features", nlohmann::json()));
  if (!features) return features.error();
  const nlohmann::json category = j.value("category", nlohmann::json(""));
  return AgreementLabel{j["tier"].get<std::string>(), category.is_string() ? category.get<std::string>() : "",
                        *features, j["agreed"].get<bool>()};
}

std::vector<double> escalationInputs(const AnswerFeatures& f) {
  const double agrees = f.category_agrees ? 1.0 : 0.0;
  return {1.0,
          std::clamp(f.stated_confidence, 0.0, 1.0),
          agrees,
          std::clamp(f.classifier_confidence, 0.0, 1.0),
          std::clamp(f.classifier_prob_of_answer, 0.0, 1.0),
          agrees * std::clamp(f.classifier_confidence, 0.0, 1.0),
          f.repaired ? 1.0 : 0.0,
          f.needs_human ? 1.0 : 0.0,
          std::min(f.steps, 8) / 8.0,
          std::clamp(f.difficulty_score, 0.0, 1.0)};
}

const EscalationModel& EscalationModel::builtin() {
  static const EscalationModel model = [] {
    const auto text = embeddedFile("config/escalation_model.json");
    if (!text) std::abort();  // the build embeds it
    auto parsed = parse(*text, "<embedded config/escalation_model.json>");
    if (!parsed) std::abort();  // tests check the shipped file parses
    return std::move(*parsed);
  }();
  return model;
}

Result<EscalationModel> EscalationModel::parse(std::string_view json_text, const std::string& source) {
  auto doc = nlohmann::json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return Error::invalidArgument(source + ": not a JSON object");
  if (doc.value("format", "") != kFormat) return Error::invalidArgument(source + ": not an escalation model (format)");
  if (doc.value("version", 0) != kVersion)
    return Error::invalidArgument(source + ": escalation model version " +
                                  doc.value("version", nlohmann::json()).dump() + ", this build reads " +
                                  std::to_string(kVersion));
  const nlohmann::json names = doc.value("features", nlohmann::json::array());
  if (!names.is_array() || names.size() != kInputs)
    return Error::invalidArgument(source + ": features: expected " + std::to_string(kInputs) + " names");
  for (std::size_t k = 0; k < kInputs; ++k)
    if (!names[k].is_string() || names[k].get<std::string>() != kEscalationFeatureNames[k])
      return Error::invalidArgument(source + ": features[" + std::to_string(k) + "]: expected \"" +
                                    std::string(kEscalationFeatureNames[k]) + "\"");
  auto readWeights = [&](const nlohmann::json& j, const std::string& where) -> Result<Weights> {
    if (!j.is_object() || !j.contains("weights") || !j["weights"].is_array() || j["weights"].size() != kInputs)
      return Error::invalidArgument(source + ": " + where + ".weights: expected " + std::to_string(kInputs) +
                                    " numbers");
    Weights w;
    for (const auto& v : j["weights"]) {
      if (!v.is_number() || !std::isfinite(v.get<double>()))
        return Error::invalidArgument(source + ": " + where + ".weights: not a finite number");
      w.w.push_back(v.get<double>());
    }
    w.examples = j.value("examples", 0);
    return w;
  };
  EscalationModel model;
  const nlohmann::json pooled_json = doc.value("pooled", nlohmann::json());
  auto pooled = readWeights(pooled_json, "pooled");
  if (!pooled) return pooled.error();
  model.pooled_ = std::move(*pooled);
  const nlohmann::json tiers = doc.value("tiers", nlohmann::json::object());
  if (!tiers.is_object()) return Error::invalidArgument(source + ": tiers: expected an object");
  for (const auto& [tier, j] : tiers.items()) {
    auto w = readWeights(j, "tiers." + tier);
    if (!w) return w.error();
    model.tiers_[tier] = std::move(*w);
  }
  return model;
}

Result<EscalationModel> EscalationModel::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::io(path + ": cannot open the escalation model");
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

EscalationModel EscalationModel::train(const std::vector<AgreementLabel>& labels,
                                       const EscalationTrainOptions& options) {
  EscalationModel model;
  std::vector<const AgreementLabel*> all;
  std::map<std::string, std::vector<const AgreementLabel*>> by_tier;
  for (const auto& l : labels) {
    all.push_back(&l);
    by_tier[l.tier].push_back(&l);
  }
  model.pooled_ = {fit(all, options), static_cast<int>(all.size())};
  for (const auto& [tier, examples] : by_tier)
    if (static_cast<int>(examples.size()) >= options.min_tier_examples)
      model.tiers_[tier] = {fit(examples, options), static_cast<int>(examples.size())};
  return model;
}

double EscalationModel::agreement(const std::string& tier, const AnswerFeatures& f) const {
  auto it = tiers_.find(tier);
  const Weights& w = it == tiers_.end() ? pooled_ : it->second;
  const auto x = escalationInputs(f);
  double z = 0;
  for (std::size_t k = 0; k < kInputs; ++k) z += w.w[k] * x[k];
  return sigmoid(z);
}

std::string EscalationModel::toJson() const {
  nlohmann::json doc;
  doc["format"] = kFormat;
  doc["version"] = kVersion;
  doc["features"] = nlohmann::json::array();
  for (auto name : kEscalationFeatureNames) doc["features"].push_back(std::string(name));
  doc["pooled"] = weightsJson(pooled_.w, pooled_.examples);
  doc["tiers"] = nlohmann::json::object();
  for (const auto& [tier, w] : tiers_) doc["tiers"][tier] = weightsJson(w.w, w.examples);
  return doc.dump(2) + "\n";
}

int EscalationModel::examplesFor(const std::string& tier) const {
  auto it = tiers_.find(tier);
  return it == tiers_.end() ? 0 : it->second.examples;
}

}  // namespace ticketflow::classify
