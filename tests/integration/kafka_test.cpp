#include <filesystem>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/services.hpp"
#include "ticketflow/core/process.hpp"
#include "ticketflow/domain/messages.hpp"

namespace ticketflow {
namespace {

using testing::KafkaTest;
using testing::runCommand;

// Reads until `count` messages arrived or 20 s passed.
std::vector<kafka::Message> consume(kafka::Consumer& consumer, std::size_t count) {
  std::vector<kafka::Message> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    auto m = consumer.poll(std::chrono::milliseconds(100));
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    if (m.ok() && m->has_value()) out.push_back(**m);
  }
  return out;
}

class KafkaClients : public KafkaTest {};

TEST_F(KafkaClients, ProducedMessageIsConsumedWithKeyAndHeaders) {
  kafka::Producer producer(kafka_, "test");
  ASSERT_TRUE(producer.produceSync(kafka_.topics.inbound, "INC-1", "hello", {{"trace-id", "abc"}}).ok());
  kafka::Consumer consumer(kafka_, "test", kafka_.consumer_groups.intake);
  ASSERT_TRUE(consumer.subscribe({kafka_.topics.inbound}).ok());
  auto got = consume(consumer, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "INC-1");
  EXPECT_EQ(got[0].value, "hello");
  EXPECT_EQ(got[0].header("trace-id"), "abc");
  EXPECT_TRUE(consumer.commit(got[0]).ok());
}

TEST_F(KafkaClients, CommittedOffsetIsWhereTheGroupResumes) {
  kafka::Producer producer(kafka_, "test");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(producer.produceSync(kafka_.topics.results, "same-key", "m" + std::to_string(i)).ok());
  {
    kafka::Consumer consumer(kafka_, "test", kafka_.consumer_groups.results);
    ASSERT_TRUE(consumer.subscribe({kafka_.topics.results}).ok());
    auto got = consume(consumer, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].value, "m0");
    ASSERT_TRUE(consumer.commit(got[0]).ok());
  }
  kafka::Consumer again(kafka_, "test", kafka_.consumer_groups.results);
  ASSERT_TRUE(again.subscribe({kafka_.topics.results}).ok());
  auto rest = consume(again, 2);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].value, "m1");
  EXPECT_EQ(rest[1].value, "m2");
}

// The issue's acceptance check: a ticket produced by kcat is read by our consumer code.
TEST_F(KafkaClients, KeyedRecordsLandWherePartitionForKeySays) {
  kafka::Producer producer(kafka_, "test");
  kafka::RecordFinder finder(kafka_, "test");
  auto partitions = finder.partitionCount(kafka_.topics.updates, std::chrono::seconds(5));
  ASSERT_TRUE(partitions.ok()) << partitions.error().message;
  ASSERT_EQ(*partitions, 4);
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) keys.push_back("INC-" + std::to_string(i * 7919));
  for (const auto& key : keys) ASSERT_TRUE(producer.produceSync(kafka_.topics.updates, key, "v").ok());
  kafka::Consumer consumer(kafka_, "test", kafka_.consumer_groups.results);
  ASSERT_TRUE(consumer.subscribe({kafka_.topics.updates}).ok());
  const auto got = consume(consumer, keys.size());
  ASSERT_EQ(got.size(), keys.size());
  std::set<std::int32_t> used;
  for (const auto& m : got) {
    EXPECT_EQ(m.partition, kafka::partitionForKey(*m.key, 4)) << *m.key;
    used.insert(m.partition);
  }
  EXPECT_EQ(used.size(), 4u) << "40 keys spread over every partition";
}

TEST_F(KafkaClients, RecordFinderFindsAHeaderBetweenAnOffsetAndTheEndOnly) {
  kafka::Producer producer(kafka_, "test");
  kafka::RecordFinder finder(kafka_, "test");
  const std::string key = "INC-42";
  const std::int32_t partition = kafka::partitionForKey(key, 4);
  auto empty_end = finder.endOffset(kafka_.topics.updates, partition, std::chrono::seconds(5));
  ASSERT_TRUE(empty_end.ok()) << empty_end.error().message;
  EXPECT_EQ(*empty_end, 0);
  auto nothing =
      finder.contains(kafka_.topics.updates, partition, 0, {"write-marker", "m:1"}, std::chrono::seconds(10));
  ASSERT_TRUE(nothing.ok()) << nothing.error().message;
  EXPECT_FALSE(*nothing) << "an empty partition holds nothing";

  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(
        producer.produceSync(kafka_.topics.updates, key, "v", {{"write-marker", "m:" + std::to_string(i)}}).ok());
  auto end = finder.endOffset(kafka_.topics.updates, partition, std::chrono::seconds(5));
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, 5);
  auto search = [&](std::int64_t from, const std::string& marker) {
    auto found =
        finder.contains(kafka_.topics.updates, partition, from, {"write-marker", marker}, std::chrono::seconds(10));
    EXPECT_TRUE(found.ok()) << (found.ok() ? "" : found.error().message);
    return found.ok() && *found;
  };
  EXPECT_TRUE(search(0, "m:0"));
  EXPECT_TRUE(search(0, "m:4")) << "the last record is read";
  EXPECT_TRUE(search(3, "m:3"));
  EXPECT_FALSE(search(3, "m:2")) << "records before the floor are not read";
  EXPECT_FALSE(search(0, "m:1:")) << "header values match whole";
  EXPECT_FALSE(search(5, "m:4")) << "nothing at or beyond the end";
  EXPECT_FALSE(search(0, "m:9"));
  // Another partition of the topic holds none of them.
  auto other =
      finder.contains(kafka_.topics.updates, (partition + 1) % 4, 0, {"write-marker", "m:0"}, std::chrono::seconds(10));
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(*other);
}

TEST_F(KafkaClients, TicketProducedByKcatIsReadByOurConsumer) {
  const std::string dir = testing::makeTempDir("kcat");
  const std::string ticket =
      R"({"schema_version":1,"id":"KCAT-1","tenant":"acme","subject":"Printer offline","body":"The printer on floor 3 is offline.","created_at":"2026-11-22T10:00:00Z"})";
  testing::writeFile(dir + "/ticket.json", ticket + "\n");
  const auto out = runCommand("kcat -P -b " + kafka_.bootstrap_servers + " -t " + kafka_.topics.inbound +
                                  " -k KCAT-1 -l " + dir + "/ticket.json",
                              30);
  ASSERT_EQ(out.exit_code, 0) << out.output;

  kafka::Consumer consumer(kafka_, "test", kafka_.consumer_groups.intake);
  ASSERT_TRUE(consumer.subscribe({kafka_.topics.inbound}).ok());
  auto got = consume(consumer, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "KCAT-1");
  auto parsed = parseTicket(got[0].value);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->id, "KCAT-1");
  EXPECT_EQ(parsed->subject, "Printer offline");
  std::filesystem::remove_all(dir);
}

// `ticketflow broker` as its own process: kcat produces to and consumes from it, and it stops
// cleanly on SIGTERM.
TEST(BrokerCommand, KcatProducesAndConsumesThroughIt) {
  const std::string dir = testing::makeTempDir("broker");
  const std::string bootstrap_file = dir + "/bootstrap";
  ChildProcess broker({testing::binaryPath(), "broker", "--partitions", "3", "--bootstrap-file", bootstrap_file},
                      dir + "/broker.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!std::filesystem::exists(bootstrap_file) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(std::filesystem::exists(bootstrap_file)) << testing::readFile(dir + "/broker.log");
  std::string bootstrap = testing::readFile(bootstrap_file);
  bootstrap.erase(bootstrap.find_last_not_of("\n") + 1);
  ASSERT_EQ(bootstrap.rfind("127.0.0.1:", 0), 0u) << bootstrap;

  testing::writeFile(dir + "/in.txt", "first\nsecond\nthird\n");
  auto produced = runCommand("kcat -P -b " + bootstrap + " -t tickets.inbound -l " + dir + "/in.txt", 30);
  ASSERT_EQ(produced.exit_code, 0) << produced.output;
  auto consumed = runCommand("kcat -C -b " + bootstrap + " -t tickets.inbound -o beginning -e -q -f \"%s\\n\"", 30);
  ASSERT_EQ(consumed.exit_code, 0) << consumed.output;
  for (const char* m : {"first", "second", "third"})
    EXPECT_NE(consumed.output.find(m), std::string::npos) << consumed.output;
  auto listing = runCommand("kcat -L -b " + bootstrap + " -t tickets.tier.frontier", 30);
  EXPECT_NE(listing.output.find("3 partitions"), std::string::npos) << listing.output;

  EXPECT_EQ(broker.stop(SIGTERM, std::chrono::seconds(10)), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ticketflow
