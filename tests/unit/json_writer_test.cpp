#include "ticketflow/core/json_writer.hpp"

#include <limits>

#include <gtest/gtest.h>

#include "ticketflow/domain/messages.hpp"

namespace ticketflow {
namespace {

using nlohmann::json;

TEST(JsonWriter, WritesWhatNlohmannPrintsForTheSameDocument) {
  JsonWriter w;
  w.beginObject()
      .field("a", "plain")
      .field("b", std::int64_t{-42})
      .field("c", std::uint64_t{18446744073709551615u})
      .field("d", 0.1)
      .field("e", 3.0)
      .field("f", 1e-7)
      .field("g", true)
      .field("h", std::vector<std::string>{"x", "", "z"});
  w.key("i").beginArray().endArray().key("j").beginObject().endObject();
  w.key("k").null().field("l", json{{"nested", {1, 2.5, "s"}}}).endObject();
  const std::string text = w.take();
  EXPECT_EQ(text, json::parse(text).dump());
  EXPECT_EQ(json::parse(text)["c"].get<std::uint64_t>(), 18446744073709551615u);
  EXPECT_TRUE(json::parse(text)["e"].is_number_float());  // 3.0 stays a double
}

TEST(JsonWriter, EscapesLikeDumpAndReplacesBytesThatAreNotUtf8) {
  const std::string tricky = std::string("quote \" backslash \\ tab \t newline \n nul ") + '\0' +
                             " bell \x07 del \x7f " + "Grüße 日本語 🖨️";
  JsonWriter w;
  w.value(tricky);
  const std::string text = w.take();
  EXPECT_EQ(text, json(tricky).dump());
  EXPECT_EQ(json::parse(text).get<std::string>(), tricky);

  JsonWriter bad;
  bad.value(std::string("ok \xc3\x28 \xed\xa0\x80 end \xf0\x9f"));  // broken pair, surrogate, cut-off sequence
  const std::string replaced = bad.take();
  EXPECT_TRUE(isValidUtf8(replaced));
  EXPECT_EQ(json::parse(replaced).get<std::string>(),
            "ok \xEF\xBF\xBD( \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(JsonWriter, NonFiniteNumbersAreNull) {
  JsonWriter w;
  w.beginArray()
      .value(std::numeric_limits<double>::quiet_NaN())
      .value(std::numeric_limits<double>::infinity())
      .endArray();
  EXPECT_EQ(w.take(), "[null,null]");
}

TEST(JsonWriter, DoublesRoundTripExactly) {
  for (double d :
       {0.9941335035736882, 4.4638399472251425e-08, 1.0 / 3, 123456789.125, -0.0, 5e-324, 1.7976931348623157e308}) {
    JsonWriter w;
    w.value(d);
    const std::string text = w.take();
    EXPECT_EQ(json::parse(text).get<double>(), d) << text;
    EXPECT_EQ(text, json(d).dump());
  }
}

}  // namespace
}  // namespace ticketflow
