#include "ticketflow/classify/text_features.hpp"

#include <cmath>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace ticketflow::classify {
namespace {

bool validUtf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

double norm(const std::vector<FeatureEntry>& f) {
  double n = 0;
  for (const auto& e : f) n += static_cast<double>(e.value) * e.value;
  return std::sqrt(n);
}

TEST(Normalize, EmptyAndWhitespaceOnlyGiveNothing) {
  EXPECT_EQ(normalizeText(""), "");
  EXPECT_EQ(normalizeText(" \t\r\n  "), "");
  Featurizer f(FeatureSettings{});
  FeatureWorkspace ws;
  f.featurize("", ws);
  EXPECT_TRUE(ws.features.empty());
}

TEST(Normalize, CaseFoldsAndSplitsOnPunctuation) {
  EXPECT_EQ(normalizeText("Printer JAMMED, again!!"), "printer jammed again");
  EXPECT_EQ(normalizeText("Outlook/Teams can't sync"), "outlook teams can t sync");
}

TEST(Normalize, MapsUrlsEmailsIpsErrorCodesPathsAndNumbers) {
  EXPECT_EQ(normalizeText("see https://intranet.example.com/wiki?x=1 now"), "see _url_ now");
  EXPECT_EQ(normalizeText("mail jane.doe@example.org please"), "mail _email_ please");
  EXPECT_EQ(normalizeText("ping 10.0.12.7 fails"), "ping _ip_ fails");
  EXPECT_EQ(normalizeText("(10.0.12.7:8080)"), "_ip_");
  EXPECT_EQ(normalizeText("error 0x80070005 on install"), "error _errcode_ on install");
  EXPECT_EQ(normalizeText("ORA-00942 table missing"), "_errcode_ table missing");
  EXPECT_EQ(normalizeText("file C:\\Users\\me\\report.xlsx gone"), "file _path_ gone");
  EXPECT_EQ(normalizeText("check /var/log/syslog"), "check _path_");
  EXPECT_EQ(normalizeText("room 42 floor 3"), "room _num_ floor _num_");
}

TEST(Normalize, FoldsLatinGreekAndCyrillicCase) {
  EXPECT_EQ(normalizeText("ÉCRAN Noir"), "écran noir");
  EXPECT_EQ(normalizeText("ŁÓDŹ"), "łódź");
  EXPECT_EQ(normalizeText("ΔΙΚΤΥΟ"), "δικτυο");
  EXPECT_EQ(normalizeText("ПРИНТЕР Ёлка"), "принтер ёлка");
}

TEST(Normalize, KeepsNonLatinScriptsAsWords) {
  EXPECT_EQ(normalizeText("打印机 坏了"), "打印机 坏了");
  EXPECT_EQ(normalizeText("الطابعة لا تعمل"), "الطابعة لا تعمل");
  Featurizer f(FeatureSettings{});
  FeatureWorkspace ws;
  f.featurize("打印机坏了", ws, true);
  EXPECT_FALSE(ws.features.empty());
  for (const auto& name : ws.names) EXPECT_TRUE(validUtf8(name)) << name;
}

TEST(Normalize, EmojiStandAloneAndJoinersSeparate) {
  EXPECT_EQ(normalizeText("printer🔥🔥 help"), "printer 🔥 🔥 help");
  EXPECT_EQ(normalizeText("ok👍🏽"), "ok 👍 🏽");
  EXPECT_TRUE(validUtf8(normalizeText("👩‍💻 laptop")));
}

TEST(Normalize, InvalidUtf8IsDroppedAndOutputStaysValid) {
  EXPECT_EQ(normalizeText(std::string("bad\xff\xfe"
                                      "byte")),
            "bad byte");
  EXPECT_EQ(normalizeText(std::string("trunc\xe2\x82")), "trunc");
  EXPECT_EQ(normalizeText(std::string("over\xc0\xaflong")), "over long");
  EXPECT_EQ(normalizeText(std::string("surrogate\xed\xa0\x80x")), "surrogate x");
}

TEST(Normalize, BinaryGarbageGivesValidUtf8AndFiniteFeatures) {
  std::mt19937 rng(7);
  std::string garbage(100000, '\0');
  for (auto& c : garbage) c = static_cast<char>(rng() & 0xFF);
  const std::string n = normalizeText(garbage);
  EXPECT_TRUE(validUtf8(n));
  Featurizer f(FeatureSettings{});
  FeatureWorkspace ws;
  f.featurize(garbage, ws);
  for (const auto& e : ws.features) ASSERT_TRUE(std::isfinite(e.value));
  ASSERT_LT(ws.features.empty() ? 0u : ws.features.back().index, FeatureSettings{}.dimension());
}

TEST(Featurize, OneMegabyteTicketIsHandledAndNormalised) {
  std::string big;
  const std::string words[] = {"printer ", "network ", "password ", "laptop ", "x7 ", "ügyfél ", "сеть "};
  for (std::size_t i = 0; big.size() < (1u << 20); ++i) big += words[(i * 7 + i / 3) % 7];
  FeatureSettings s;
  Featurizer f(s);
  FeatureWorkspace ws;
  f.featurize(big, ws);
  ASSERT_FALSE(ws.features.empty());
  // Each block is L2-normalised and scaled by its weight.
  EXPECT_NEAR(norm(ws.features), std::sqrt(s.word_weight * s.word_weight + s.char_weight * s.char_weight), 1e-3);
  for (const auto& e : ws.features) ASSERT_LT(e.index, s.dimension());
}

TEST(Featurize, SublinearTfDampsRepeats) {
  FeatureSettings s;
  s.char_ngram_max = 0;
  s.word_ngram_max = 1;
  Featurizer f(s);
  FeatureWorkspace ws;
  f.featurize("disk disk disk disk full", ws, true);
  ASSERT_EQ(ws.features.size(), 2u);
  // tf 4 -> 1 + ln 4 = 2.386 against tf 1 -> 1.
  EXPECT_NEAR(std::abs(ws.features[0].value) / std::abs(ws.features[1].value), 1.0 + std::log(4.0), 1e-5);
  EXPECT_EQ(ws.names[0], "w:disk");
  EXPECT_EQ(ws.names[1], "w:full");
}

TEST(Featurize, DeterministicHashingPinnedValues) {
  // FNV-1a 64 reference values; a change here changes every model's features.
  EXPECT_EQ(fnv1a64(""), 14695981039346656037ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
  FeatureSettings s;
  Featurizer f(s);
  FeatureWorkspace a, b;
  f.featurize("VPN keeps dropping after the Windows update", a, true);
  f.featurize("vpn keeps dropping after the windows update!", b, true);
  ASSERT_EQ(a.features.size(), b.features.size());
  for (std::size_t i = 0; i < a.features.size(); ++i) {
    EXPECT_EQ(a.features[i].index, b.features[i].index);
    EXPECT_FLOAT_EQ(a.features[i].value, b.features[i].value);
  }
  // Word unigrams, bigrams, then character n-grams inside word boundaries.
  EXPECT_EQ(a.names[0], "w:vpn");
  EXPECT_EQ(a.names[2], "w:vpn keeps");
  EXPECT_NE(std::find(a.names.begin(), a.names.end(), "c: vp"), a.names.end());
}

TEST(Featurize, WorkspaceReuseGivesSameResult) {
  Featurizer f(FeatureSettings{});
  FeatureWorkspace ws;
  f.featurize("first ticket about printers", ws);
  const auto first = ws.features;
  f.featurize("a completely different and much longer ticket about the vpn and outlook", ws);
  f.featurize("first ticket about printers", ws);
  ASSERT_EQ(first.size(), ws.features.size());
  for (std::size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i].index, ws.features[i].index);
}

}  // namespace
}  // namespace ticketflow::classify
