#include "ticketflow/core/json_parse.hpp"

#include <gtest/gtest.h>

namespace ticketflow {
namespace {

using nlohmann::json;

// The document must be the one nlohmann builds: the validator and every reader see types
// (unsigned vs signed integers, doubles) exactly as before.
TEST(JsonParse, BuildsTheDocumentNlohmannWould) {
  for (const char* text :
       {R"({"a":1,"b":-2,"c":18446744073709551615,"d":-9223372036854775808,"e":0.1,"f":1.5e300,"g":[true,false,null]})",
        R"({"s":"Gr\u00fc\u00dfe \ud83d\udda8 \"q\" \\ \n","nested":{"x":{"y":[[],{}]}}})", R"([1.0, 2.5e-7, -0.0])",
        R"("just a string")", "42", R"({"dup":1,"dup":2})", "  {\"padded\" : [ 1 , 2 ] }  \n"}) {
    const auto ours = parseJsonText(text);
    ASSERT_TRUE(ours.has_value()) << text;
    const json theirs = json::parse(text);
    EXPECT_EQ(*ours, theirs) << text;
    EXPECT_EQ(ours->dump(), theirs.dump()) << text;
  }
  EXPECT_TRUE((*parseJsonText(R"({"n":7})"))["n"].is_number_unsigned());
  EXPECT_TRUE((*parseJsonText(R"({"n":-7})"))["n"].is_number_integer());
  EXPECT_EQ((*parseJsonText(R"({"dup":1,"dup":2})"))["dup"], 2);  // the last, as nlohmann keeps
}

TEST(JsonParse, RefusesWhatIsNotJsonAndAcceptsWhatNlohmannAccepts) {
  for (const char* bad : {"", "{", "{not json", R"({"a":1,})", "[1 2]", "\"\xc3\x28\"", "nul", R"({"a":01})", "1e400"})
    EXPECT_FALSE(parseJsonText(bad).has_value()) << bad;
  // Deeper than simdjson's limit, and a byte-order mark: nlohmann's verdict stands.
  const std::string deep = std::string(2000, '[') + std::string(2000, ']');
  ASSERT_TRUE(parseJsonText(deep).has_value());
  EXPECT_EQ(*parseJsonText(deep), json::parse(deep));
  EXPECT_EQ(parseJsonText("\xEF\xBB\xBF{\"bom\":true}").value_or(json())["bom"], true);
}

}  // namespace
}  // namespace ticketflow
