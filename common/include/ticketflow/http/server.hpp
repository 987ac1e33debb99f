#pragma once
// A small HTTP/1.1 server on loopback or any interface (Poco underneath), for the provider
// simulator, the metrics endpoint and the tests' HTTP receivers. The handler runs on one of the
// server's threads and may block (the simulator sleeps to model latency), so max_threads bounds
// how many requests are served at once; further connections queue.

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace ticketflow::http {

struct HttpRequest {
  std::string method;
  std::string path;                            // without the query string
  std::string query;                           // after '?', may be empty
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string content_type = "application/json";
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  int max_threads = 64;
  int max_queued = 1024;
  std::size_t max_body_bytes = 8 * 1024 * 1024;
};

class HttpServer {
 public:
  // Starts listening at once; throws std::runtime_error if the port cannot be bound.
  HttpServer(const HttpServerOptions& options, HttpHandler handler);
  ~HttpServer();  // stops and waits for handlers to return
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ticketflow::http
