#include "ticketflow/http/server.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

namespace ticketflow::http {
namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(const HttpHandler& handler, std::size_t max_body) : handler_(handler), max_body_(max_body) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    HttpRequest req;
    req.method = request.getMethod();
    const std::string& uri = request.getURI();
    const auto q = uri.find('?');
    req.path = uri.substr(0, q);
    if (q != std::string::npos) req.query = uri.substr(q + 1);
    for (const auto& [name, value] : request) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      req.headers[lower] = value;
    }
    HttpResponse res;
    if (request.hasContentLength() && static_cast<std::size_t>(request.getContentLength()) > max_body_) {
      res = {413, {}, R"({"error":{"message":"request body too large"}})"};
    } else {
      std::string body;
      Poco::StreamCopier::copyToString(request.stream(), body);
      req.body = std::move(body);
      try {
        res = handler_(req);
      } catch (const std::exception& e) {
        res = {500, {}, std::string(R"({"error":{"message":"internal error"}})")};
      }
    }
    response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(res.status));
    response.setContentType(res.content_type);
    for (const auto& [name, value] : res.headers) response.set(name, value);
    response.setContentLength(static_cast<std::streamsize>(res.body.size()));
    response.setKeepAlive(request.getKeepAlive());
    response.send() << res.body;
  }

 private:
  const HttpHandler& handler_;
  std::size_t max_body_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(const HttpHandler& handler, std::size_t max_body) : handler_(handler), max_body_(max_body) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(handler_, max_body_);
  }

 private:
  const HttpHandler& handler_;
  std::size_t max_body_;
};

}  // namespace

struct HttpServer::Impl {
  HttpHandler handler;
  Poco::ThreadPool pool;
  std::unique_ptr<Poco::Net::HTTPServer> server;
  int port = 0;
  bool stopped = false;

  Impl(int max_threads) : pool(2, max_threads) {}
};

HttpServer::HttpServer(const HttpServerOptions& options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(options.max_threads)) {
  impl_->handler = std::move(handler);
  try {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress(options.host, static_cast<Poco::UInt16>(options.port)),
                                   256);
    impl_->port = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams();  // owned by the server (ref-counted)
    params->setMaxThreads(options.max_threads);
    params->setMaxQueued(options.max_queued);
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(0);  // unlimited per connection
    impl_->server = std::make_unique<Poco::Net::HTTPServer>(new Factory(impl_->handler, options.max_body_bytes),
                                                            impl_->pool, socket, params);
    impl_->server->start();
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " +
                             e.displayText());
  }
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::port() const {
  return impl_->port;
}

void HttpServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->server->stopAll(/*abortCurrent=*/true);
  impl_->pool.joinAll();
}

}  // namespace ticketflow::http
