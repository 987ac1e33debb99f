#include "ticketflow/classify/category_model.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"

namespace ticketflow::classify {
namespace {

// A small, learnable corpus: each label has its own vocabulary plus shared filler words.
std::vector<LabelledText> toyCorpus(std::size_t per_label, std::uint32_t seed) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> vocab = {
      {"Hardware", {"laptop", "screen", "keyboard", "docking", "battery", "charger", "monitor"}},
      {"Access", {"password", "locked", "account", "login", "permission", "mfa", "reset"}},
      {"Purchase", {"order", "invoice", "quote", "supplier", "purchase", "license", "budget"}},
  };
  const std::vector<std::string> filler = {"please", "help", "thanks", "hello", "today", "issue", "team"};
  std::mt19937 rng(seed);
  std::vector<LabelledText> out;
  for (std::size_t i = 0; i < per_label; ++i)
    for (const auto& [label, words] : vocab) {
      std::string text;
      for (int k = 0; k < 6; ++k) text += words[rng() % words.size()] + " " + filler[rng() % filler.size()] + " ";
      out.push_back({text, label});
    }
  return out;
}

TrainOptions smallOptions() {
  TrainOptions o;
  o.features.dim_bits = 12;
  o.max_epochs = 5;
  o.quant_bits = 8;
  o.threads = 1;
  return o;
}

CategoryModel trainToy() {
  auto m = CategoryModel::train(toyCorpus(60, 1), smallOptions());
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return std::move(m).value();
}

TEST(CategoryModel, LearnsASeparableCorpusWithCalibratedProbabilities) {
  const auto model = trainToy();
  ASSERT_EQ(model.labels(), (std::vector<std::string>{"Access", "Hardware", "Purchase"}));
  std::size_t correct = 0;
  const auto test = toyCorpus(30, 99);
  for (const auto& t : test) {
    const auto p = model.predict(t.text);
    if (p.category == t.label) ++correct;
    double sum = 0;
    for (double q : p.probabilities) sum += q;
    EXPECT_NEAR(sum, 1.0, 1e-9);
    EXPECT_DOUBLE_EQ(p.confidence, p.probabilities[static_cast<std::size_t>(p.label)]);
  }
  EXPECT_GE(correct, test.size() * 95 / 100);
  EXPECT_EQ(model.predict("my laptop battery and charger").category, "Hardware");
}

TEST(CategoryModel, PredictAgreesWithMaterialisedFeatures) {
  // predictInto() scores character n-grams without writing them out; explain() uses the
  // materialised vector. Both must give the same probabilities.
  for (int bits : {8, 16}) {
    auto opt = smallOptions();
    opt.quant_bits = bits;
    auto model = CategoryModel::train(toyCorpus(40, 3), opt);
    ASSERT_TRUE(model.ok());
    for (const std::string text : {"password reset for my account", "Écran cassé, clavier HS", "оплата счета", ""}) {
      const auto p = model->predict(text);
      const auto e = model->explain(text);
      ASSERT_EQ(p.probabilities.size(), e.prediction.probabilities.size());
      for (std::size_t c = 0; c < p.probabilities.size(); ++c)
        EXPECT_NEAR(p.probabilities[c], e.prediction.probabilities[c], 1e-5) << text;
    }
  }
}

TEST(CategoryModel, ExplainNamesTheWordsThatDecided) {
  const auto model = trainToy();
  const auto e = model.explain("invoice from the supplier for the purchase order", 5);
  EXPECT_EQ(e.prediction.category, "Purchase");
  ASSERT_FALSE(e.top_features.empty());
  bool named = false;
  for (const auto& f : e.top_features)
    named |= f.feature == "w:invoice" || f.feature == "w:supplier" || f.feature == "w:purchase";
  EXPECT_TRUE(named);
  for (std::size_t i = 1; i < e.top_features.size(); ++i)
    EXPECT_GE(e.top_features[i - 1].contribution, e.top_features[i].contribution);
}

TEST(CategoryModelFile, RoundTripGivesIdenticalPredictions) {
  const auto model = trainToy();
  const std::string dir = testing::makeTempDir("model");
  ASSERT_TRUE(model.save(dir + "/m.tfmodel").ok());
  auto loaded = CategoryModel::load(dir + "/m.tfmodel");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->labels(), model.labels());
  EXPECT_DOUBLE_EQ(loaded->temperature(), model.temperature());
  EXPECT_EQ(loaded->featureSettings().dim_bits, 12);
  for (const auto& t : toyCorpus(10, 5)) {
    const auto a = model.predict(t.text);
    const auto b = loaded->predict(t.text);
    EXPECT_EQ(a.label, b.label);
    for (std::size_t c = 0; c < a.probabilities.size(); ++c) EXPECT_DOUBLE_EQ(a.probabilities[c], b.probabilities[c]);
  }
  EXPECT_EQ(loaded->toBytes(), model.toBytes());
}

TEST(CategoryModelFile, FlippedByteIsAChecksumError) {
  const std::string bytes = trainToy().toBytes();
  for (std::size_t at : {std::size_t{40}, bytes.size() / 2, bytes.size() - 20}) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    auto m = CategoryModel::fromBytes(bad, "flipped");
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::kMalformed);
    EXPECT_NE(m.error().message.find("checksum mismatch"), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find("flipped"), std::string::npos);
  }
}

TEST(CategoryModelFile, TruncatedWrongVersionAndForeignFilesAreClearErrors) {
  const std::string bytes = trainToy().toBytes();
  auto truncated = CategoryModel::fromBytes(bytes.substr(0, bytes.size() - 100), "cut");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message.find("corrupt or truncated"), std::string::npos);

  std::string v2 = bytes;
  v2[8] = 2;  // format version field
  auto wrong = CategoryModel::fromBytes(v2, "future");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("format version 2, this build reads version 1"), std::string::npos)
      << wrong.error().message;

  auto foreign = CategoryModel::fromBytes("{\"not\": \"a model\"} and some more bytes to pass size", "x.json");
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.error().message.find("not a ticketflow category model"), std::string::npos);

  auto missing = CategoryModel::load("/nonexistent/dir/m.tfmodel");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
}

TEST(CategoryModelFile, HeaderThatDisagreesWithThePayloadIsRejected) {
  // Rewrite dim_bits in the header and fix the checksum: the size check must catch it.
  std::string bytes = trainToy().toBytes();
  const auto at = bytes.find("\"dim_bits\":12");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 13, "\"dim_bits\":13");
  const std::uint64_t sum = fnv1a64(std::string_view(bytes).substr(0, bytes.size() - 8));
  for (int i = 0; i < 8; ++i)
    bytes[bytes.size() - 8 + static_cast<std::size_t>(i)] = static_cast<char>((sum >> (8 * i)) & 0xFF);
  auto m = CategoryModel::fromBytes(bytes, "edited");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("does not match its header"), std::string::npos) << m.error().message;
}

TEST(Calibration, FitTemperatureRecoversTheGeneratingTemperature) {
  // Labels drawn from softmax(logits / 2.5): the fitted temperature should be close to 2.5.
  std::mt19937 rng(11);
  std::normal_distribution<double> nd(0, 3);
  const std::size_t n = 4000, classes = 4;
  std::vector<double> logits(n * classes);
  std::vector<int> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> p(classes);
    double sum = 0;
    for (std::size_t c = 0; c < classes; ++c) {
      logits[i * classes + c] = nd(rng);
      p[c] = std::exp(logits[i * classes + c] / 2.5);
      sum += p[c];
    }
    std::discrete_distribution<int> pick(p.begin(), p.end());
    labels[i] = pick(rng);
  }
  EXPECT_NEAR(fitTemperature(logits, labels, classes), 2.5, 0.25);
}

TEST(Calibration, TrainedModelConfidenceTracksAccuracy) {
  // Noisy labels: 20% of texts get a random label, so a calibrated model cannot be sure.
  auto data = toyCorpus(600, 21);
  std::mt19937 rng(5);
  const std::vector<std::string> labels = {"Access", "Hardware", "Purchase"};
  for (auto& d : data)
    if (rng() % 5 == 0) d.label = labels[rng() % 3];
  auto model = CategoryModel::train(data, smallOptions());
  ASSERT_TRUE(model.ok());
  auto test = toyCorpus(300, 77);
  for (auto& d : test)
    if (rng() % 5 == 0) d.label = labels[rng() % 3];
  std::vector<int> truth, predicted;
  std::vector<double> confidence;
  for (const auto& t : test) {
    const auto p = model->predict(t.text);
    truth.push_back(static_cast<int>(std::find(labels.begin(), labels.end(), t.label) - labels.begin()));
    predicted.push_back(p.label);
    confidence.push_back(p.confidence);
  }
  const auto m = computeMetrics(truth, predicted, confidence, 3);
  double mean_conf = 0;
  for (double c : confidence) mean_conf += c / static_cast<double>(confidence.size());
  EXPECT_NEAR(mean_conf, m.accuracy, 0.08);
  EXPECT_LT(m.expected_calibration_error, 0.10);
}

TEST(Metrics, AccuracyMacroF1AndConfusion) {
  const std::vector<int> truth = {0, 0, 1, 1, 2, 2};
  const std::vector<int> pred = {0, 1, 1, 1, 2, 0};
  const auto m = computeMetrics(truth, pred, {}, 3);
  EXPECT_DOUBLE_EQ(m.accuracy, 4.0 / 6.0);
  EXPECT_EQ(m.confusion[0][1], 1u);
  EXPECT_EQ(m.confusion[2][0], 1u);
  EXPECT_DOUBLE_EQ(m.per_class[1].precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.per_class[1].recall, 1.0);
  const double f0 = 0.5, f1 = 0.8, f2 = 2.0 / 3.0;
  EXPECT_NEAR(m.macro_f1, (f0 + f1 + f2) / 3, 1e-12);
}

TEST(LabelledData, ReadsCsvWithQuotesAndJsonlAndReportsBadRows) {
  const std::string dir = testing::makeTempDir("data");
  testing::writeFile(dir + "/a.csv",
                     "text,category\n\"printer, jammed \"\"again\"\"\nline two\",Hardware\nvpn down,Access\n");
  auto csv = readLabelledFile(dir + "/a.csv", "text", "category");
  ASSERT_TRUE(csv.ok()) << csv.error().message;
  ASSERT_EQ(csv->size(), 2u);
  EXPECT_EQ((*csv)[0].text, "printer, jammed \"again\"\nline two");
  EXPECT_EQ((*csv)[1].label, "Access");
  testing::writeFile(dir + "/b.jsonl", "{\"text\":\"a\",\"category\":\"X\"}\n\n{\"text\":\"b\"}\n");
  auto bad = readLabelledFile(dir + "/b.jsonl", "text", "category");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find(":3:"), std::string::npos) << bad.error().message;
  auto nocol = readLabelledFile(dir + "/a.csv", "body", "category");
  ASSERT_FALSE(nocol.ok());
  EXPECT_NE(nocol.error().message.find("no column 'body'"), std::string::npos);
}

}  // namespace
}  // namespace ticketflow::classify
