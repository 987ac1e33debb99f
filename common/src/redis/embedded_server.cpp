#include "ticketflow/redis/embedded_server.hpp"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <thread>

#include "ticketflow/redis/client.hpp"

namespace ticketflow::redis {

EmbeddedRedisServer::EmbeddedRedisServer(bool append_only) : append_only_(append_only) {
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
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--dir", dir_,
                               "--save", "", "--appendonly", append_only_ ? "yes" : "no", "--appendfsync", "always",
                               "--protected-mode", "yes", "--daemonize", "no",
                               "--logfile", dir_ + "/redis.log"},
      dir_ + "/redis.stdout");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->running()) throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
    RedisEndpoint endpoint;
    endpoint.port = port_;
    auto client = RedisClient::connect(endpoint, std::chrono::milliseconds(200), std::chrono::milliseconds(500));
    if (client) {
      auto pong = (*client)->command({"PING"});
      if (pong && pong->str == "PONG") return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("redis-server did not answer PING within 10 s on port " + std::to_string(port_));
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
