#include <gtest/gtest.h>

#include "fixtures/services.hpp"
#include "ticketflow/redis/client.hpp"

namespace ticketflow {
namespace {

class EmbeddedRedis : public testing::RedisTest {};

TEST_F(EmbeddedRedis, AnswersCommandsAndPipelines) {
  auto client = connect();
  auto set = client->command({"SET", key_prefix_ + "k", "v"});
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(set->str, "OK");
  auto replies = client->pipeline(
      {{"INCRBY", key_prefix_ + "n", "5"}, {"GET", key_prefix_ + "k"}, {"GET", key_prefix_ + "none"}, {"NOPE"}});
  ASSERT_TRUE(replies.ok());
  EXPECT_EQ((*replies)[0].integer, 5);
  EXPECT_EQ((*replies)[1].str, "v");
  EXPECT_TRUE((*replies)[2].isNil());
  EXPECT_EQ((*replies)[3].type, redis::Reply::Type::kError);
}

TEST_F(EmbeddedRedis, InfoFieldsAreReadByWholeName) {
  auto info = connect()->command({"INFO", "memory"});
  ASSERT_TRUE(info.ok());
  const auto bytes = redis::infoField(info->str, "used_memory");
  ASSERT_TRUE(bytes.has_value());
  EXPECT_GT(std::stoll(*bytes), 0) << "the used_memory line, not used_memory_human's";
  const auto human = redis::infoField(info->str, "used_memory_human");
  ASSERT_TRUE(human.has_value());
  EXPECT_EQ(human->find('\r'), std::string::npos);
  EXPECT_FALSE(redis::infoField(info->str, "used_mem").has_value()) << "a prefix of a name is no match";
  EXPECT_FALSE(redis::infoField(info->str, "no_such_field").has_value());
}

TEST_F(EmbeddedRedis, ABrokenConnectionIsReportedAndReconnectWorksAfterRestart) {
  auto client = connect();
  ASSERT_TRUE(client->command({"PING"}).ok());
  server().stop(/*crash=*/true);
  auto failed = client->command({"PING"});
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.error().retriable);
  EXPECT_TRUE(client->broken());
  server().restart();
  auto fresh = connect();
  auto pong = fresh->command({"PING"});
  ASSERT_TRUE(pong.ok());
  EXPECT_EQ(pong->str, "PONG");
}

}  // namespace
}  // namespace ticketflow
