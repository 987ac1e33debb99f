// What every subcommand shares: the --config option and its loader, Redis connections, the
// category model's path (command.hpp).
#include "command.hpp"

#include <stdexcept>

namespace ticketflow::app {

cli::OptionSpec configOption() {
  return {"config", "FILE", "configuration file (default: the embedded config/ticketflow.yaml)", ""};
}

std::string displayRedisUrl(const std::string& url) {
  return url.find('@') == std::string::npos ? url : "(url with credentials)";
}

Config loadConfigOption(const cli::ParsedArgs& args) {
  if (auto path = args.find("config")) return loadConfig(*path);
  return loadEmbeddedConfig();
}

std::shared_ptr<redis::RedisPool> connectConfigured(const Config& config) {
  if (auto url = redis::parseRedisUrl(config.redis.url); !url)
    throw std::runtime_error("redis.url: " + url.error().message);
  auto options = redis::RedisPoolOptions::fromConfig(config.redis);
  if (!options) throw std::runtime_error("redis.tls: " + options.error().message);
  auto pool = std::make_shared<redis::RedisPool>(*options);
  auto pong = pool->command({"PING"});
  if (!pong || pong->type == redis::Reply::Type::kError)
    throw std::runtime_error("Redis at " + displayRedisUrl(config.redis.url) + " is not reachable (" +
                             (pong ? pong->str : pong.error().message) +
                             "); start redis-server or set TICKETFLOW_REDIS_URL / redis.url");
  return pool;
}

redis::FeedbackStore openFeedbackStore(const Config& config) {
  return redis::FeedbackStore(connectConfigured(config), config.redis.key_prefix,
                              std::chrono::hours(24) * config.feedback.retention_days);
}

std::shared_ptr<redis::RedisPool> connectPrivate(const redis::EmbeddedRedisServer& server, int size) {
  redis::RedisPoolOptions options;
  options.endpoint.port = server.port();
  options.pool_size = size;
  options.command_timeout = std::chrono::seconds(10);
  options.acquire_timeout = std::chrono::seconds(10);
  return std::make_shared<redis::RedisPool>(options);
}

std::string categoryModelPath(const cli::ParsedArgs& args, const Config& config) {
  if (auto m = args.find("model"); m && !m->empty()) return *m;
  return config.resolvePath(config.classifier.category_model);
}

classify::CategoryModel loadCategoryModel(const std::string& path) {
  auto model = classify::CategoryModel::load(path);
  if (!model) throw std::runtime_error(model.error().message);
  return std::move(model).value();
}

}  // namespace ticketflow::app
