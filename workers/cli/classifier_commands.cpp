// train, eval, classify: the category model, difficulty scorer and routing
// policy as command-line tools.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "command.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/classify/difficulty.hpp"
#include "ticketflow/classify/routing.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/redis/feedback_store.hpp"

namespace ticketflow::app {
namespace {

using classify::CategoryModel;

std::pair<int, int> parseRange(const std::string& s) {
  const auto dash = s.find('-');
  try {
    if (dash == std::string::npos) {
      const int v = std::stoi(s);
      return {v, v};
    }
    return {std::stoi(s.substr(0, dash)), std::stoi(s.substr(dash + 1))};
  } catch (const std::exception&) {
    throw cli::UsageError("expected a range like 2-5, got '" + s + "'");
  }
}

int runTrain(const cli::ParsedArgs& args) {
  const auto started = std::chrono::steady_clock::now();
  const std::string data_path = args.get("data");
  const std::string out = args.get("out");
  if (data_path.empty()) throw cli::UsageError("--data is required");
  if (out.empty()) throw cli::UsageError("--out is required");
  auto data = classify::readLabelledFile(data_path, args.get("text-col"), args.get("label-col"));
  if (!data) throw std::runtime_error(data.error().message);
  std::cout << "read " << data->size() << " labelled texts from " << data_path << " in "
            << fixed(secondsSince(started), 2) << " s\n"
            << std::flush;
  if (args.has("feedback")) {
    // The helpdesk's corrected categories (feedback.keep_text), from the configured Redis.
    auto examples = openFeedbackStore(loadConfigOption(args)).categoryExamples();
    if (!examples) throw std::runtime_error("feedback: " + examples.error().message);
    for (const auto& e : *examples) data->push_back({e.text, e.category});
    std::cout << "added " << examples->size() << " corrected categories from the helpdesk's feedback\n" << std::flush;
  }
  classify::TrainOptions opt;
  opt.features.dim_bits = static_cast<int>(args.getInt("dim-bits", 10, 24));
  const auto [wmin, wmax] = parseRange(args.get("word-ngrams"));
  if (wmin != 1 || wmax < 1 || wmax > 2) throw cli::UsageError("--word-ngrams must be 1-1 or 1-2");
  opt.features.word_ngram_max = wmax;
  const std::string chars = args.get("char-ngrams");
  if (chars == "0" || chars == "none") {
    opt.features.char_ngram_max = 0;
  } else {
    const auto [cmin, cmax] = parseRange(chars);
    if (cmin < 1 || cmax < cmin || cmax > 8) throw cli::UsageError("--char-ngrams must be like 2-5 (at most 8)");
    opt.features.char_ngram_min = cmin;
    opt.features.char_ngram_max = cmax;
  }
  opt.features.char_weight = args.getDouble("char-weight");
  opt.features.lead_words = static_cast<int>(args.getInt("lead-words", 0, 64));
  opt.features.skip_window = static_cast<int>(args.getInt("skip-window", 0, 8));
  opt.max_epochs = static_cast<int>(args.getInt("epochs", 1, 100));
  opt.l2 = args.getDouble("l2");
  opt.eta0 = args.getDouble("eta0");
  const auto class_weight = classify::parseClassWeight(args.get("class-weight"));
  if (!class_weight) throw cli::UsageError("--class-weight must be none, balanced or sqrt");
  opt.class_weight = *class_weight;
  opt.average = !args.has("no-average");
  opt.refit = args.has("refit");
  opt.quant_bits = static_cast<int>(args.getInt("quant-bits", 8, 16));
  opt.nb_scaling = args.has("nb");
  opt.features.idf = args.has("idf");
  opt.features.sublinear_tf = !args.has("raw-tf");
  opt.ensemble = static_cast<int>(args.getInt("ensemble", 1, 32));
  opt.seed = static_cast<std::uint64_t>(args.getInt("seed", 0, 1LL << 62));
  opt.patience = static_cast<int>(args.getInt("patience", 1, 100));
  const auto stop_on = classify::parseStopOn(args.get("stop-on"));
  if (!stop_on) throw cli::UsageError("--stop-on must be accuracy or loss");
  opt.stop_on = *stop_on;
  opt.threads = static_cast<int>(args.getInt("threads", 1, 64));
  const auto loss = classify::parseTrainingLoss(args.get("loss"));
  if (!loss) throw cli::UsageError("--loss must be log, hinge or modified_huber");
  opt.loss = *loss;
  opt.nb_alpha = args.getDouble("nb-alpha");
  opt.nb_power = args.getDouble("nb-power");
  classify::TrainReport report;
  auto model = CategoryModel::train(*data, opt, &report, [](const std::string& line) {
    std::cout << "  " << line << "\n" << std::flush;
  });
  if (!model) throw std::runtime_error(model.error().message);
  if (auto st = model->save(out); !st) throw std::runtime_error(st.error().message);
  std::ifstream f(out, std::ios::binary | std::ios::ate);
  const auto bytes = static_cast<long long>(f.tellg());
  std::cout << "trained on " << report.examples << " texts (" << model->labels().size() << " labels), best epoch "
            << report.best_epoch << ", validation accuracy " << fixed(report.validation_accuracy) << ", temperature "
            << fixed(report.temperature, 3) << "\n"
            << "wrote " << out << " (" << bytes << " bytes, " << fixed(static_cast<double>(bytes) / 1048576.0, 2)
            << " MiB)\n"
            << "training took " << fixed(report.seconds, 2) << " s; total " << fixed(secondsSince(started), 2)
            << " s\n";
  return kExitOk;
}

int runCategoryEval(const cli::ParsedArgs& args, const Config& config) {
  const std::string path = categoryModelPath(args, config);
  const CategoryModel model = loadCategoryModel(path);
  auto data = classify::readLabelledFile(args.get("data"), args.get("text-col"), args.get("label-col"));
  if (!data) throw std::runtime_error(data.error().message);
  const auto& labels = model.labels();
  std::vector<int> truth, predicted;
  std::vector<double> confidence;
  std::size_t unknown = 0;
  classify::FeatureWorkspace ws;
  classify::Prediction p;
  for (const auto& d : *data) {
    const auto it = std::find(labels.begin(), labels.end(), d.label);
    if (it == labels.end()) {
      ++unknown;
      continue;
    }
    model.predictInto(d.text, ws, p);
    truth.push_back(static_cast<int>(it - labels.begin()));
    predicted.push_back(p.label);
    confidence.push_back(p.confidence);
  }
  const auto m = classify::computeMetrics(truth, predicted, confidence, labels.size());
  std::cout << "model " << path << " on " << args.get("data") << ": " << truth.size() << " texts";
  if (unknown) std::cout << " (" << unknown << " skipped: label not in the model)";
  std::cout << "\naccuracy " << fixed(m.accuracy) << "\nmacro-F1 " << fixed(m.macro_f1) << "\n"
            << "expected calibration error " << fixed(m.expected_calibration_error) << "\n\n";
  std::size_t width = 9;
  for (const auto& l : labels) width = std::max(width, l.size());
  auto pad = [&](const std::string& s) { return s + std::string(width > s.size() ? width - s.size() : 0, ' '); };
  std::cout << pad("class") << "  precision  recall  f1      support\n";
  for (std::size_t c = 0; c < labels.size(); ++c) {
    const auto& pc = m.per_class[c];
    std::cout << pad(labels[c]) << "  " << fixed(pc.precision) << "     " << fixed(pc.recall) << "  " << fixed(pc.f1)
              << "  " << pc.support << "\n";
  }
  std::cout << "\nconfusion matrix (rows: true, columns: predicted, in label order above)\n";
  for (std::size_t c = 0; c < labels.size(); ++c) {
    std::cout << pad(labels[c]);
    for (std::size_t k = 0; k < labels.size(); ++k) {
      std::string cell = std::to_string(m.confusion[c][k]);
      std::cout << std::string(cell.size() < 6 ? 6 - cell.size() : 0, ' ') << cell;
    }
    std::cout << "\n";
  }
  return kExitOk;
}

std::vector<double> parseShares(const std::string& s) {
  std::vector<double> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      out.push_back(std::stod(item));
    } catch (const std::exception&) {
      throw cli::UsageError("--calibrate-shares: '" + item + "' is not a number");
    }
  }
  if (out.size() != 3) throw cli::UsageError("--calibrate-shares takes three shares: easy,medium,hard");
  return out;
}

// Scores every text of --data for difficulty (with the category the model predicts, when a
// model loads), picks thresholds that give the target shares and rewrites them in --config.
int runCalibrateShares(const cli::ParsedArgs& args, const Config& config, const std::string& shares_text) {
  const auto shares = parseShares(shares_text);
  const auto config_path = args.find("config");
  if (!config_path || config_path->empty()) throw cli::UsageError("--calibrate-shares needs --config FILE to write to");
  auto data = classify::readLabelledFile(args.get("data"), args.get("text-col"), args.get("label-col"));
  if (!data) throw std::runtime_error(data.error().message);
  std::optional<CategoryModel> model;
  if (auto m = CategoryModel::load(categoryModelPath(args, config))) model.emplace(std::move(m).value());
  const classify::DifficultyScorer scorer(config.classifier.difficulty);
  std::vector<double> scores;
  for (const auto& d : *data)
    scores.push_back(scorer.score(d.text, model ? model->predict(d.text).category : "").score);
  auto t = classify::thresholdsForShares(scores, shares[0], shares[1], shares[2]);
  if (!t) throw std::runtime_error(t.error().message);
  std::size_t counts[3] = {0, 0, 0};
  for (double s : scores) counts[s < t->easy_below ? 0 : s >= t->hard_from ? 2 : 1]++;
  std::ifstream in(*config_path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + *config_path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto rewritten = classify::rewriteDifficultyThresholds(ss.str(), *t);
  if (!rewritten) throw std::runtime_error(*config_path + ": " + rewritten.error().message);
  {
    std::ofstream out(*config_path + ".tmp", std::ios::binary | std::ios::trunc);
    out << *rewritten;
    if (!out) throw std::runtime_error("cannot write " + *config_path + ".tmp");
  }
  if (std::rename((*config_path + ".tmp").c_str(), config_path->c_str()) != 0)
    throw std::runtime_error("cannot replace " + *config_path);
  const double n = static_cast<double>(scores.size());
  std::cout << "scored " << scores.size() << " texts" << (model ? " (category prior from the model)" : "") << "\n"
            << "easy_below " << fixed(t->easy_below) << ", hard_from " << fixed(t->hard_from) << "\n"
            << "shares: easy " << fixed(static_cast<double>(counts[0]) / n, 3) << ", medium "
            << fixed(static_cast<double>(counts[1]) / n, 3) << ", hard " << fixed(static_cast<double>(counts[2]) / n, 3)
            << " (target " << shares_text << ")\n"
            << "wrote the two thresholds to " << *config_path << "\n";
  return kExitOk;
}

int runClassify(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  std::string text;
  if (auto file = args.find("file"); file && !file->empty()) {
    std::ifstream in(*file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + *file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  } else if (!args.positionals().empty()) {
    text = args.positionals()[0];
  } else {
    throw cli::UsageError("give the ticket TEXT or --file FILE");
  }
  const std::string path = categoryModelPath(args, config);
  const CategoryModel model = loadCategoryModel(path);
  const bool explain = args.has("explain");
  const auto e = model.explain(text, 12);
  const classify::DifficultyScorer scorer(config.classifier.difficulty);
  const auto diff = scorer.score(text, e.prediction.category);
  const classify::RoutingPolicy policy(config);
  classify::RouteInput in;
  in.category = e.prediction.category;
  in.difficulty = diff.level;
  in.confidence = e.prediction.confidence;
  in.tenant = args.find("tenant").value_or("");
  in.budget.over_budget = args.has("over-budget");
  const auto route = policy.route(in);
  std::cout << "category   " << e.prediction.category << " (confidence " << fixed(e.prediction.confidence, 3) << ")\n"
            << "difficulty " << classify::difficultyName(diff.level) << " (score " << fixed(diff.score, 3) << ")\n"
            << "tier       " << route.tier
            << (route.action == classify::RouteAction::kModel
                    ? ""
                    : std::string(" (") + classify::routeActionName(route.action) + ")")
            << " by rule " << route.rule << "\n";
  if (!explain) return kExitOk;
  std::cout << "\nprobabilities:\n";
  std::vector<std::size_t> order(model.labels().size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](auto a, auto b) { return e.prediction.probabilities[a] > e.prediction.probabilities[b]; });
  for (auto c : order)
    std::cout << "  " << fixed(e.prediction.probabilities[c], 3) << "  " << model.labels()[c] << "\n";
  std::cout << "\nfeatures for " << e.prediction.category << " (contribution to its logit against the class mean):\n";
  for (const auto& f : e.top_features) std::cout << "  " << fixed(f.contribution, 3) << "  " << f.feature << "\n";
  std::cout << "\ndifficulty signals (value x weight):\n";
  for (const auto& s : diff.signals)
    std::cout << "  " << s.name << std::string(s.name.size() < 16 ? 16 - s.name.size() : 0, ' ') << fixed(s.value, 3)
              << " x " << fixed(s.weight, 3) << " = " << fixed(s.value * s.weight + 0.0, 3) << "\n";
  std::cout << "\nrouting rules:\n";
  for (const auto& line : route.trace) std::cout << "  " << line << "\n";
  std::cout << "rule that fired: " << route.rule << "\n";
  return kExitOk;
}

int runEval(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  if (args.get("data").empty()) throw cli::UsageError("--data is required");
  if (auto shares = args.find("calibrate-shares"); shares && !shares->empty())
    return runCalibrateShares(args, config, *shares);
  return runCategoryEval(args, config);
}

}  // namespace

std::vector<Command> classifierCommands() {
  const auto cfg = configOption();
  const cli::OptionSpec data{"data", "FILE", "labelled data (.csv or .jsonl, optionally .gz)", ""};
  const cli::OptionSpec text_col{"text-col", "C", "text column", "text"};
  const cli::OptionSpec label_col{"label-col", "L", "label column", "category"};
  const cli::OptionSpec model{"model", "MODEL", "model file (default: the configured one)", ""};
  return {
      {{"train",
        "train a category model",
        "",
        0,
        0,
        {cfg,
         data,
         text_col,
         label_col,
         {"feedback", "", "also learn the helpdesk's corrected categories (Redis of --config; feedback.keep_text)", ""},
         {"out", "MODEL", "model file to write", ""},
         {"dim-bits", "N", "hashed feature space of 2^N slots", "18"},
         {"word-ngrams", "1-N", "word n-gram orders", "1-2"},
         {"char-ngrams", "A-B", "character n-gram orders inside word boundaries (0: none)", "2-7"},
         {"char-weight", "W", "weight of the character block against the word block", "0.6"},
         {"lead-words", "N", "the first N words also count as position-tagged features (0: off)", "0"},
         {"skip-window", "N", "word pairs up to N apart as features, beyond bigrams (0: off)", "0"},
         {"epochs", "N", "most epochs (early stopping on a validation slice)", "16"},
         {"l2", "X", "L2 regularisation strength", "1e-6"},
         {"eta0", "X", "initial learning rate", "1.0"},
         {"class-weight", "W", "none, balanced or sqrt", "sqrt"},
         {"no-average", "", "plain SGD instead of averaged SGD", ""},
         {"refit", "", "after early stopping, retrain on all the data for the chosen epoch count", ""},
         {"quant-bits", "N", "weight quantisation: 8 or 16 bits", "8"},
         {"ensemble", "N", "average N models trained with different shuffles (same prediction cost)", "1"},
         {"threads", "N", "train ensemble members on N threads", "2"},
         {"seed", "N", "shuffling seed", "20261122"},
         {"patience", "N", "epochs without improvement before stopping", "3"},
         {"stop-on", "C", "early-stopping criterion: loss (validation log-loss) or accuracy", "loss"},
         {"raw-tf", "", "word features count raw term frequency instead of 1 + ln(tf)", ""},
         {"idf", "", "weight features by inverse document frequency", ""},
         {"loss", "L", "log (multinomial logistic), hinge or modified_huber (one-vs-rest)", "log"},
         {"nb", "", "scale features by naive-Bayes log-count ratios (NB-SVM style)", ""},
         {"nb-alpha", "A", "NB smoothing", "1.0"},
         {"nb-power", "P", "NB ratio exponent (magnitude |log r|^P)", "1.0"}},
        "Holds out a stratified 10% of FILE (every tenth text of each label) to choose the epoch\n"
        "count and fit the confidence temperature; with --refit it then retrains on all of FILE."},
       runTrain},
      {{"eval",
        "evaluate a category model, or calibrate difficulty thresholds",
        "",
        0,
        0,
        {cfg,
         data,
         text_col,
         label_col,
         model,
         {"calibrate-shares", "E,M,H", "choose difficulty thresholds giving these easy,medium,hard shares", ""}},
        "With --calibrate-shares, scores the texts of FILE for difficulty, chooses easy_below and\n"
        "hard_from so the tiers get the given shares, and rewrites those two values in --config."},
       runEval},
      {{"classify",
        "classify one ticket text",
        "[TEXT]",
        0,
        1,
        {cfg,
         model,
         {"file", "FILE", "read the text from FILE", ""},
         {"tenant", "T", "tenant the ticket belongs to (for tenant pins)", ""},
         {"over-budget", "", "route as if the budget were exhausted", ""},
         {"explain", "", "show the features and rule that decided", ""}}},
       runClassify},
  };
}

}  // namespace ticketflow::app
