// The escalation verifier: the shipped model loads, training finds the signal in labelled
// answers, and a bad model file is refused with the field named.
#include "ticketflow/classify/escalation_model.hpp"

#include <random>

#include <gtest/gtest.h>

namespace ticketflow::classify {
namespace {

AnswerFeatures answer(bool agrees, double stated, double classifier) {
  AnswerFeatures f;
  f.category_agrees = agrees;
  f.stated_confidence = stated;
  f.classifier_confidence = classifier;
  f.classifier_prob_of_answer = agrees ? classifier : (1 - classifier) / 7;
  f.steps = 3;
  f.difficulty_score = 0.4;
  return f;
}

TEST(EscalationModel, TheShippedModelLoadsAndRanksAnAnswerTheClassifierBacksAboveOneItContradicts) {
  const EscalationModel& m = EscalationModel::builtin();
  EXPECT_GT(m.agreement("fast", answer(true, 0.9, 0.9)), m.agreement("fast", answer(false, 0.9, 0.9)));
  const auto reparsed = EscalationModel::parse(m.toJson(), "round trip");
  ASSERT_TRUE(reparsed.ok()) << reparsed.error().message;
  EXPECT_DOUBLE_EQ(reparsed->agreement("fast", answer(true, 0.8, 0.7)), m.agreement("fast", answer(true, 0.8, 0.7)));
}

TEST(EscalationModel, TrainingLearnsThatAgreementWithTheClassifierMattersAndStatedConfidenceDoesNot) {
  // Simulated answers: the reference agrees 92% of the time when the answer's category is the
  // classifier's, 15% when not; stated confidence is noise, as published work finds it nearly is.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<AgreementLabel> labels;
  for (int i = 0; i < 4000; ++i) {
    const bool agrees = u(rng) < 0.7;
    const std::string tier = i % 2 ? "fast" : "balanced";
    labels.push_back(
        {tier, "Hardware", answer(agrees, 0.7 + 0.3 * u(rng), 0.5 + 0.5 * u(rng)), u(rng) < (agrees ? 0.92 : 0.15)});
  }
  const auto m = EscalationModel::train(labels);
  EXPECT_EQ(m.examplesFor("fast"), 2000);
  EXPECT_EQ(m.examplesFor("frontier"), 0) << "a tier without labels uses the pooled weights";
  const double backed = m.agreement("fast", answer(true, 0.8, 0.8));
  const double contradicted = m.agreement("fast", answer(false, 0.8, 0.8));
  EXPECT_NEAR(backed, 0.92, 0.05);
  EXPECT_NEAR(contradicted, 0.15, 0.05);
  EXPECT_NEAR(m.agreement("fast", answer(true, 0.99, 0.8)), m.agreement("fast", answer(true, 0.71, 0.8)), 0.05)
      << "stated confidence carried no signal";
  EXPECT_GT(m.agreement("frontier", answer(true, 0.8, 0.8)), m.agreement("frontier", answer(false, 0.8, 0.8)));
}

TEST(EscalationModel, ABadModelFileIsRefusedNamingWhatIsWrong) {
  EXPECT_NE(EscalationModel::parse("[1,2]", "m.json").error().message.find("m.json: not a JSON object"),
            std::string::npos);
  EXPECT_NE(EscalationModel::parse(R"({"format":"x"})", "m.json").error().message.find("format"), std::string::npos);
  std::string text = EscalationModel::builtin().toJson();
  const auto at = text.find("\"stated_confidence\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 19, "\"stated_confidenceX\"");
  EXPECT_NE(EscalationModel::parse(text, "m.json").error().message.find("features[1]"), std::string::npos);
  auto doc = nlohmann::json::parse(EscalationModel::builtin().toJson());
  doc["pooled"]["weights"].erase(0);
  EXPECT_NE(EscalationModel::parse(doc.dump(), "m.json").error().message.find("pooled.weights"), std::string::npos);
  EXPECT_FALSE(EscalationModel::load("/nonexistent/escalation.json").ok());
}

TEST(EscalationModel, ALabelRoundTripsThroughItsJsonLine) {
  const AgreementLabel label{"fast", "Access", answer(false, 0.6, 0.8), true};
  auto back = AgreementLabel::fromJson(nlohmann::json::parse(label.toJson().dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->tier, "fast");
  EXPECT_EQ(back->category, "Access");
  EXPECT_TRUE(back->agreed);
  EXPECT_FALSE(back->features.category_agrees);
  EXPECT_DOUBLE_EQ(back->features.stated_confidence, 0.6);
  EXPECT_FALSE(AgreementLabel::fromJson(nlohmann::json{{"tier", "fast"}}).ok());
}

}  // namespace
}  // namespace ticketflow::classify
