// Redis over TLS (rediss://) against Debian's redis-server serving TLS only, with certificates
// made by openssl on loopback: the server is verified (CA and name), a client certificate is
// shown when the server requires one, an untrusted server stops start-up with a clear error, and
// the whole pipeline runs with every Redis connection over TLS.
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "fixtures/services.hpp"
#include "fixtures/tls_certificates.hpp"
#include "local_stack/local_stack.hpp"
#include "pipeline/pipeline.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/process.hpp"
#include "ticketflow/redis/embedded_server.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

class RedisTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certificates_ = new testing::TlsCertificates(testing::makeTlsCertificates());
    redis::EmbeddedRedisTls tls{certificates_->server_cert, certificates_->server_key, certificates_->ca_file, false};
    server_ = new redis::EmbeddedRedisServer(redis::EmbeddedRedisOptions{false, tls, {}});
    tls.require_client_certificate = true;
    mutual_server_ = new redis::EmbeddedRedisServer(redis::EmbeddedRedisOptions{false, tls, {}});
  }
  static void TearDownTestSuite() {
    delete mutual_server_;
    delete server_;
    std::error_code ec;
    std::filesystem::remove_all(certificates_->dir, ec);
    delete certificates_;
  }

  static RedisConfig configFor(const redis::EmbeddedRedisServer& server) {
    RedisConfig config;
    config.url = server.url();
    config.tls.ca_file = certificates_->ca_file;
    config.connect_timeout_ms = 2000;
    config.command_timeout_ms = 2000;
    return config;
  }
  static Result<std::unique_ptr<redis::RedisClient>> connect(const RedisConfig& config) {
    auto options = redis::RedisPoolOptions::fromConfig(config);
    if (!options) return options.error();
    return redis::RedisClient::connect(options->endpoint, options->connect_timeout, options->command_timeout);
  }

  static testing::TlsCertificates* certificates_;
  static redis::EmbeddedRedisServer* server_;
  static redis::EmbeddedRedisServer* mutual_server_;
};

testing::TlsCertificates* RedisTls::certificates_ = nullptr;
redis::EmbeddedRedisServer* RedisTls::server_ = nullptr;
redis::EmbeddedRedisServer* RedisTls::mutual_server_ = nullptr;

TEST_F(RedisTls, VerifiesTheServerAndRunsCommandsPipelinesAndScripts) {
  auto options = redis::RedisPoolOptions::fromConfig(configFor(*server_));
  ASSERT_TRUE(options.ok()) << options.error().message;
  ASSERT_TRUE(options->endpoint.tls);
  redis::RedisPool pool(*options);
  auto set = pool.command({"SET", "tls:key", std::string(100000, 'x')});  // larger than one TLS record
  ASSERT_TRUE(set.ok()) << set.error().message;
  auto got = pool.command({"GET", "tls:key"});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->str.size(), 100000u);
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 500; ++i) commands.push_back({"INCR", "tls:counter"});
  auto replies = pool.pipeline(commands);
  ASSERT_TRUE(replies.ok()) << replies.error().message;
  EXPECT_EQ(replies->back().integer, 500);
  const redis::RedisScript script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto scripted = pool.eval(script, {"tls:counter"}, {"5"});
  ASSERT_TRUE(scripted.ok()) << scripted.error().message;
  EXPECT_EQ(scripted->integer, 505);
}

TEST_F(RedisTls, ACertificateFromAnotherCaIsRefusedAsNotTrusted) {
  RedisConfig config = configFor(*server_);
  config.tls.ca_file = certificates_->other_ca_file;
  auto client = connect(config);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code, ErrorCode::kInvalidArgument) << "retrying cannot fix the trust";
  EXPECT_NE(client.error().message.find("is not trusted"), std::string::npos) << client.error().message;
  EXPECT_NE(client.error().message.find("certificate in certificate chain"), std::string::npos)
      << "OpenSSL's reason: " << client.error().message;
}

TEST_F(RedisTls, ANameTheCertificateDoesNotCarryIsRefused) {
  RedisConfig config = configFor(*server_);
  config.tls.server_name = "redis.example.com";
  auto client = connect(config);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(client.error().message.find("mismatch"), std::string::npos) << client.error().message;
  config.tls.server_name = "localhost";  // the certificate's DNS name, though we dial 127.0.0.1
  auto named = connect(config);
  ASSERT_TRUE(named.ok()) << named.error().message;
}

TEST_F(RedisTls, PlainTextToATlsPortFailsWithinTheTimeout) {
  RedisConfig config = configFor(*server_);
  config.url = "redis://127.0.0.1:" + std::to_string(server_->port()) + "/0";
  config.tls = {};
  const auto started = std::chrono::steady_clock::now();
  auto client = connect(config);
  Result<redis::Reply> pong = client.ok() ? (*client)->command({"PING"}) : Result<redis::Reply>(client.error());
  EXPECT_FALSE(pong.ok() && pong->str == "PONG");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(RedisTls, AClientCertificateIsShownWhenTheServerRequiresOne) {
  RedisConfig config = configFor(*mutual_server_);
  auto refused = connect(config);
  Result<redis::Reply> pong = refused.ok() ? (*refused)->command({"PING"}) : Result<redis::Reply>(refused.error());
  ASSERT_FALSE(pong.ok()) << "the server requires a client certificate";
  EXPECT_EQ(pong.error().code, ErrorCode::kInvalidArgument)
      << "a setting to fix, not an outage: " << pong.error().message;
  EXPECT_NE(pong.error().message.find("refused our client certificate"), std::string::npos) << pong.error().message;
  config.tls.cert_file = certificates_->client_cert;
  config.tls.key_file = certificates_->client_key;
  auto client = connect(config);
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto ok = (*client)->command({"PING"});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->str, "PONG");
}

TEST_F(RedisTls, ARotatedCaFileIsReadForTheNextConnection) {
  const std::string ca = certificates_->dir + "/rotating-ca.crt";
  testing::writeFile(ca, testing::readFile(certificates_->other_ca_file));  // the wrong CA first
  RedisTlsConfig trust;
  trust.ca_file = ca;
  auto context = redis::TlsClientContext::make(trust);
  ASSERT_TRUE(context.ok()) << context.error().message;
  redis::RedisEndpoint endpoint;
  endpoint.port = server_->port();
  endpoint.tls = true;
  endpoint.tls_context = *context;
  auto before = redis::RedisClient::connect(endpoint, 2000ms, 2000ms);
  ASSERT_FALSE(before.ok());
  EXPECT_EQ(before.error().code, ErrorCode::kInvalidArgument);
  // As a Kubernetes Secret update does: new content, a newer file.
  testing::writeFile(ca, testing::readFile(certificates_->ca_file));
  std::filesystem::last_write_time(ca, std::filesystem::last_write_time(ca) + 2s);
  auto after = redis::RedisClient::connect(endpoint, 2000ms, 2000ms);
  ASSERT_TRUE(after.ok()) << after.error().message;
  // A half-written file does not replace the last good context.
  testing::writeFile(ca, "-----BEGIN CERTIFICATE-----\ntruncated");
  std::filesystem::last_write_time(ca, std::filesystem::last_write_time(ca) + 4s);
  auto during = redis::RedisClient::connect(endpoint, 2000ms, 2000ms);
  ASSERT_TRUE(during.ok()) << during.error().message;
}

TEST_F(RedisTls, UnusableFilesAreNamedInTheError) {
  RedisConfig config = configFor(*server_);
  config.tls.ca_file = certificates_->dir + "/client.key";  // a key, not certificates
  auto options = redis::RedisPoolOptions::fromConfig(config);
  ASSERT_FALSE(options.ok());
  EXPECT_NE(options.error().message.find("client.key"), std::string::npos) << options.error().message;
  config.tls.ca_file = certificates_->ca_file;
  config.tls.cert_file = certificates_->client_cert;
  config.tls.key_file = certificates_->server_key;  // not this certificate's key
  options = redis::RedisPoolOptions::fromConfig(config);
  ASSERT_FALSE(options.ok());
  EXPECT_NE(options.error().message.find("not the key of"), std::string::npos) << options.error().message;
}

// The shipped configuration pointed at the local stack, with Redis at `url` over TLS.
std::string tlsConfigFile(const Config& config, const std::string& url, const std::string& ca_file) {
  std::string text = testing::configFileFor(config);
  const std::string plain = "url: " + config.redis.url + "\n";
  const auto at = text.find(plain);
  if (at == std::string::npos) throw std::runtime_error("the shipped configuration has no redis url line");
  text.replace(at, plain.size(), "url: " + url + "\n  tls:\n    ca_file: " + ca_file + "\n");
  return text;
}

TEST_F(RedisTls, AnUntrustedServerStopsStartUpNamingTheField) {
  Config config = loadEmbeddedConfig();
  const std::string dir = testing::makeTempDir("tls-start");
  testing::writeFile(dir + "/ticketflow.yaml", tlsConfigFile(config, server_->url(), certificates_->other_ca_file));
  const auto check = testing::runCommand(testing::binaryPath() + " config check " + dir + "/ticketflow.yaml 2>&1");
  ASSERT_EQ(check.exit_code, 0) << "the file itself is valid: " << check.output;
  const auto run =
      testing::runCommand(testing::binaryPath() + " run intake --config " + dir + "/ticketflow.yaml 2>&1", 30);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("redis.tls"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("is not trusted"), std::string::npos) << run.output;
  std::filesystem::remove_all(dir);
}

TEST_F(RedisTls, ThePipelineRunsWithEveryRedisConnectionOverTls) {
  Config config = testing::testConfig();
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  const std::string plain_url = config.redis.url;
  config.redis = configFor(*server_);
  config.redis.key_prefix = testing::uniqueName("tls") + ":";
  std::ostringstream log;
  pipeline::Pipeline run(config, testing::optionsFor(pipeline::allRoles(config), &log));
  run.start();

  std::vector<Ticket> tickets;
  for (const auto& t : testing::sampleTickets()) {
    if (tickets.size() == 30) break;
    tickets.push_back(t);
  }
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, testing::recordsOf(tickets));
  testing::TopicReader updates(config.kafka.bootstrap_servers, config.kafka.topics.updates, config.kafka.partitions);
  const auto seen = testing::readUntilEveryKey(updates, tickets.size(), 120s);
  EXPECT_EQ(seen.size(), tickets.size()) << log.str().substr(0, 4000);
  auto spend = run.ledger().show();
  ASSERT_TRUE(spend.ok()) << spend.error().message;
  MicroUsd settled = 0;
  for (const auto& b : *spend)
    if (b.scope == "global" && b.period == "day") settled = b.settled;
  EXPECT_GT(settled, 0) << "the ledger charged over TLS";
  run.requestStop();
  EXPECT_TRUE(run.wait().ok());

  // Every key this run wrote is on the TLS server; the stack's plain Redis got none of them.
  auto tls_client = connect(configFor(*server_));
  ASSERT_TRUE(tls_client.ok());
  auto written = (*tls_client)->command({"KEYS", config.redis.key_prefix + "*"});
  ASSERT_TRUE(written.ok());
  EXPECT_GT(written->elements.size(), 0u);
  RedisConfig plain;
  plain.url = plain_url;
  auto plain_options = redis::RedisPoolOptions::fromConfig(plain);
  ASSERT_TRUE(plain_options.ok());
  auto plain_client = redis::RedisClient::connect(plain_options->endpoint, 1000ms, 1000ms);
  ASSERT_TRUE(plain_client.ok());
  auto none = (*plain_client)->command({"KEYS", config.redis.key_prefix + "*"});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->elements.size(), 0u);
}

}  // namespace
}  // namespace ticketflow
