#include "ticketflow/cli/args.hpp"

#include <gtest/gtest.h>

#include "ticketflow/redis/client.hpp"

namespace ticketflow {
namespace {

const cli::CommandSpec kSpec{
    "broker", "run it", "FILE", 1, 1, {{"partitions", "N", "partitions", "8"}, {"verbose", "", "talk more", ""}}, ""};

TEST(Args, ParsesOptionsFlagsAndPositionals) {
  auto a = cli::parseArgs(kSpec, {"--partitions=4", "--verbose", "x.yaml"});
  EXPECT_EQ(a.getInt("partitions", 1, 256), 4);
  EXPECT_TRUE(a.has("verbose"));
  EXPECT_EQ(a.positionals(), std::vector<std::string>{"x.yaml"});
  auto b = cli::parseArgs(kSpec, {"x.yaml", "--partitions", "16"});
  EXPECT_EQ(b.getInt("partitions", 1, 256), 16);
  auto c = cli::parseArgs(kSpec, {"x.yaml"});
  EXPECT_EQ(c.getInt("partitions", 1, 256), 8);  // default
}

TEST(Args, RejectsBadInput) {
  EXPECT_THROW(cli::parseArgs(kSpec, {"--nope", "x"}), cli::UsageError);
  EXPECT_THROW(cli::parseArgs(kSpec, {}), cli::UsageError);
  EXPECT_THROW(cli::parseArgs(kSpec, {"a", "b"}), cli::UsageError);
  EXPECT_THROW(cli::parseArgs(kSpec, {"x", "--partitions"}), cli::UsageError);
  EXPECT_THROW(cli::parseArgs(kSpec, {"x", "--verbose=yes"}), cli::UsageError);
  EXPECT_THROW(cli::parseArgs(kSpec, {"x", "--partitions", "many"}).getInt("partitions", 1, 256), cli::UsageError);
  EXPECT_THROW(cli::parseArgs(kSpec, {"x", "--partitions", "0"}).getInt("partitions", 1, 256), cli::UsageError);
}

TEST(Args, HelpNeedsNoPositionals) {
  EXPECT_TRUE(cli::parseArgs(kSpec, {"--help"}).helpRequested());
  const std::string u = cli::usage(kSpec);
  EXPECT_NE(u.find("usage: ticketflow broker [options] FILE"), std::string::npos);
  EXPECT_NE(u.find("--partitions N"), std::string::npos);
}

TEST(RedisUrl, Parses) {
  auto e = redis::parseRedisUrl("redis://user:s3cret@cache.internal:6380/2");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "cache.internal");
  EXPECT_EQ(e->port, 6380);
  EXPECT_EQ(e->db, 2);
  EXPECT_EQ(e->username, "user");
  EXPECT_EQ(e->password, "s3cret");
  EXPECT_FALSE(e->tls);
  EXPECT_TRUE(redis::parseRedisUrl("rediss://h:1/0")->tls);
  EXPECT_EQ(redis::parseRedisUrl("redis://127.0.0.1")->port, 6379);
  EXPECT_FALSE(redis::parseRedisUrl("http://h:1").ok());
  EXPECT_FALSE(redis::parseRedisUrl("redis://h:99999").ok());
  EXPECT_FALSE(redis::parseRedisUrl("redis://h:1/0/1").ok()) << "one /db at most";
  EXPECT_FALSE(redis::parseRedisUrl("redis://a:1,b:2/0").ok()) << "several hosts need sentinel mode";
  EXPECT_FALSE(redis::parseRedisUrl("redis://h:1/x").ok());
  auto v6 = redis::parseRedisUrl("redis://[::1]:6380/1");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 6380);
  EXPECT_EQ(redis::parseRedisUrl("redis://[fd00::7]")->port, 6379);
  EXPECT_FALSE(redis::parseRedisUrl("redis://[::1:6379/0").ok());
  auto escaped = redis::parseRedisUrl("redis://app%3Auser:p%40ss%2Fw%3Ard@h:1/0");
  ASSERT_TRUE(escaped.ok()) << escaped.error().message;
  EXPECT_EQ(escaped->username, "app:user");
  EXPECT_EQ(escaped->password, "p@ss/w:rd") << "a password is percent-decoded, as in any URL";
  EXPECT_FALSE(redis::parseRedisUrl("redis://u:100%@h:1/0").ok());
}

TEST(RedisUrl, SentinelModeNamesTheSentinelsAndThePrimary) {
  auto e = redis::parseRedisUrl("rediss+sentinel://app:pw@10.0.0.1:26380,sentinel-b,sentinel-c:5000/orders/3");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(e->master_name, "orders");
  EXPECT_EQ(e->db, 3);
  EXPECT_EQ(e->username, "app");
  EXPECT_EQ(e->password, "pw");
  ASSERT_EQ(e->sentinels.size(), 3u);
  EXPECT_EQ(e->sentinels[0].host, "10.0.0.1");
  EXPECT_EQ(e->sentinels[0].port, 26380);
  EXPECT_EQ(e->sentinels[1].host, "sentinel-b");
  EXPECT_EQ(e->sentinels[1].port, 26379) << "a sentinel's default port";
  EXPECT_EQ(e->sentinels[2].port, 5000);
  EXPECT_EQ(redis::parseRedisUrl("redis+sentinel://s1:26379/mymaster")->db, 0);
  EXPECT_FALSE(redis::parseRedisUrl("redis+sentinel://s1:26379").ok()) << "the primary's name is required";
  EXPECT_FALSE(redis::parseRedisUrl("redis+sentinel://s1:26379,:1/m").ok()) << "an empty host";
  EXPECT_FALSE(redis::parseRedisUrl("redis+sentinel://s1:0/m").ok());
}

}  // namespace
}  // namespace ticketflow
