#include "ticketflow/redis/embedded_server.hpp"

#include <filesystem>
#include <stdexcept>
#include <thread>

#include <signal.h>
#include <stdlib.h>

#include "ticketflow/config/config.hpp"
#include "ticketflow/redis/client.hpp"

namespace ticketflow::redis {

EmbeddedRedisServer::EmbeddedRedisServer(bool append_only)
    : EmbeddedRedisServer(EmbeddedRedisOptions{append_only, std::nullopt, {}}) {}

EmbeddedRedisServer::EmbeddedRedisServer(EmbeddedRedisOptions options) : options_(std::move(options)) {
  std::string templ = (std::filesystem::temp_directory_path() / "ticketflow-redis-XXXXXX").string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("cannot create a temporary folder for redis-server");
  dir_ = templ;
  port_ = freeLoopbackPort();
  start();
}

EmbeddedRedisServer::~EmbeddedRedisServer() {
  process_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void EmbeddedRedisServer::start() {
  if (findProgram("redis-server").empty())
    throw std::runtime_error("redis-server is not installed (run scripts/bootstrap, or apt-get install redis-server)");
  std::vector<std::string> argv = {"redis-server",
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   options_.append_only ? "yes" : "no",
                                   "--appendfsync",
                                   "always",
                                   "--protected-mode",
                                   "yes",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   dir_ + "/redis.log"};
  if (options_.tls) {
    const auto& tls = *options_.tls;
    argv.insert(argv.end(), {"--port", "0", "--tls-port", std::to_string(port_), "--tls-cert-file", tls.cert_file,
                             "--tls-key-file", tls.key_file, "--tls-ca-cert-file", tls.ca_file, "--tls-auth-clients",
                             tls.require_client_certificate ? "yes" : "no", "--tls-replication", "yes"});
  } else {
    argv.insert(argv.end(), {"--port", std::to_string(port_)});
  }
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  process_ = std::make_unique<ChildProcess>(argv, dir_ + "/redis.stdout");
  const RedisEndpoint endpoint = probeEndpoint();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->running()) throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
    auto client = RedisClient::connect(endpoint, std::chrono::milliseconds(200), std::chrono::milliseconds(500));
    if (client) {
      auto pong = (*client)->command({"PING"});
      if (pong && pong->str == "PONG") return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("redis-server did not answer PING within 10 s on port " + std::to_string(port_));
}

RedisEndpoint EmbeddedRedisServer::probeEndpoint() const {
  RedisEndpoint endpoint;
  endpoint.port = port_;
  if (options_.tls) {
    RedisTlsConfig trust;
    trust.ca_file = options_.tls->ca_file;
    if (options_.tls->require_client_certificate) {
      trust.cert_file = options_.tls->cert_file;  // the server's own pair is signed by the same CA
      trust.key_file = options_.tls->key_file;
    }
    auto context = TlsClientContext::make(trust);
    if (!context) throw std::runtime_error("embedded redis-server TLS: " + context.error().message);
    endpoint.tls = true;
    endpoint.tls_context = *context;
  }
  return endpoint;
}

void EmbeddedRedisServer::stop(bool crash) {
  if (process_) process_->stop(crash ? SIGKILL : SIGTERM);
  process_.reset();
}

void EmbeddedRedisServer::restart() {
  stop();
  start();
}

}  // namespace ticketflow::redis
