#include "ticketflow/http/client.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>

namespace ticketflow::http {
namespace {

Poco::Timespan toTimespan(std::chrono::milliseconds ms) {
  return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Poco's SSL library must be initialised once per process.
void initialiseTlsOnce() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

}  // namespace

bool bypassesProxy(const std::string& host, const std::string& no_proxy) {
  std::stringstream list(no_proxy);
  const std::string h = lower(host);
  for (std::string entry; std::getline(list, entry, ',');) {
    entry.erase(0, entry.find_first_not_of(" \t"));
    entry.erase(entry.find_last_not_of(" \t") + 1);
    entry = lower(entry);
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (entry.front() == '.') entry.erase(0, 1);
    if (h == entry) return true;
    if (h.size() > entry.size() && h.compare(h.size() - entry.size(), entry.size(), entry) == 0 &&
        h[h.size() - entry.size() - 1] == '.')
      return true;
  }
  return false;
}

struct HttpClient::Impl {
  // Idle keep-alive sessions and the count of requests in flight, per scheme://host:port.
  struct HostPool {
    std::vector<std::unique_ptr<Poco::Net::HTTPClientSession>> idle;
    int in_use = 0;
  };

  HttpClientOptions options;
  Poco::Net::Context::Ptr tls_context;
  std::mutex mutex;
  std::condition_variable released;
  std::map<std::string, HostPool> pools;
  std::atomic<std::int64_t> requests{0}, opened{0};

  explicit Impl(HttpClientOptions o) : options(std::move(o)) {
    initialiseTlsOnce();
    Poco::Net::Context::Params params;
    params.verificationMode = Poco::Net::Context::VERIFY_RELAXED;  // client side: verify the server
    params.loadDefaultCAs = true;
    params.caLocation = options.ca_file;
    params.cipherList = "HIGH:!aNULL:!MD5";
    tls_context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
  }

  std::unique_ptr<Poco::Net::HTTPClientSession> openSession(const Poco::URI& uri) {
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    const bool https = uri.getScheme() == "https";
    if (https)
      session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), tls_context);
    else
      session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    const std::string& proxy = https ? options.proxy.https_proxy : options.proxy.http_proxy;
    if (!proxy.empty() && !bypassesProxy(uri.getHost(), options.proxy.no_proxy)) {
      const Poco::URI proxy_uri(proxy);
      Poco::Net::HTTPClientSession::ProxyConfig config;
      config.host = proxy_uri.getHost();
      config.port = proxy_uri.getPort();
      const std::string user_info = proxy_uri.getUserInfo();
      if (auto colon = user_info.find(':'); colon != std::string::npos) {
        config.username = user_info.substr(0, colon);
        config.password = user_info.substr(colon + 1);
      }
      session->setProxyConfig(config);
    }
    session->setKeepAlive(true);
    opened.fetch_add(1);
    return session;
  }
};

HttpClientOptions providerClientOptions(const ProviderConfig& provider, const ProxyConfig& proxy) {
  HttpClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(provider.connect_timeout_ms);
  options.read_timeout = std::chrono::milliseconds(provider.read_timeout_ms);
  options.total_timeout = std::chrono::milliseconds(provider.total_timeout_ms);
  options.max_connections = provider.max_connections;
  options.proxy = proxy;
  return options;
}

std::string joinUrl(const std::string& base, const std::string& path) {
  if (!base.empty() && base.back() == '/') return base.substr(0, base.size() - 1) + path;
  return base + path;
}

HttpClient::HttpClient(HttpClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;

HttpClientStats HttpClient::stats() const {
  return {impl_->requests.load(), impl_->opened.load()};
}

Result<ClientResponse> HttpClient::send(const ClientRequest& request) {
  const auto deadline = std::chrono::steady_clock::now() + impl_->options.total_timeout;
  Poco::URI uri;
  try {
    uri = Poco::URI(request.url);
  } catch (const Poco::Exception&) {
    return Error::invalidArgument("bad URL");
  }
  if (uri.getScheme() != "http" && uri.getScheme() != "https")
    return Error::invalidArgument("URL must be http or https");
  const std::string key = uri.getScheme() + "://" + uri.getHost() + ":" + std::to_string(uri.getPort());
  impl_->requests.fetch_add(1);

  // Take an idle connection, or open one if fewer than max_connections are in use.
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  {
    std::unique_lock lock(impl_->mutex);
    auto& pool = impl_->pools[key];
    if (!impl_->released.wait_until(lock, deadline, [&] { return pool.in_use < impl_->options.max_connections; }))
      return Error::timeout("no free connection to the host within the total timeout");
    ++pool.in_use;
    if (!pool.idle.empty()) {
      session = std::move(pool.idle.back());
      pool.idle.pop_back();
    }
  }
  auto giveBack = [&](bool reusable) {
    std::lock_guard lock(impl_->mutex);
    auto& pool = impl_->pools[key];
    --pool.in_use;
    if (reusable && session) pool.idle.push_back(std::move(session));
    impl_->released.notify_one();
  };

  try {
    if (!session) session = impl_->openSession(uri);
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      giveBack(true);
      return Error::timeout("total timeout reached before sending");
    }
    session->setTimeout(toTimespan(std::min(impl_->options.connect_timeout, remaining)),
                        toTimespan(std::min(impl_->options.read_timeout, remaining)),
                        toTimespan(std::min(impl_->options.read_timeout, remaining)));
    std::string path = uri.getPathAndQuery();
    if (path.empty()) path = "/";
    Poco::Net::HTTPRequest req(request.method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.setHost(uri.getHost(), uri.getPort());
    req.setKeepAlive(true);
    for (const auto& [name, value] : request.headers) req.set(name, value);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
      req.setContentType(request.content_type);
      req.setContentLength(static_cast<std::streamsize>(request.body.size()));
    }
    session->sendRequest(req) << request.body;
    Poco::Net::HTTPResponse res;
    std::istream& in = session->receiveResponse(res);
    ClientResponse out;
    out.status = static_cast<int>(res.getStatus());
    for (const auto& [name, value] : res) out.headers[lower(name)] = value;
    // A provider or sink that sends without end must not take the process's memory with it.
    char chunk[16 * 1024];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
      out.body.append(chunk, static_cast<std::size_t>(in.gcount()));
      if (out.body.size() > impl_->options.max_response_bytes) {
        giveBack(false);
        return Error::malformed("the response from " + uri.getHost() + " is over " +
                                std::to_string(impl_->options.max_response_bytes) + " bytes");
      }
    }
    const bool reusable = res.getKeepAlive();
    giveBack(reusable);
    if (std::chrono::steady_clock::now() > deadline) return Error::timeout("response arrived after the total timeout");
    return out;
  } catch (const Poco::TimeoutException&) {
    giveBack(false);
    return Error::timeout("timed out talking to " + uri.getHost());
  } catch (const Poco::Net::SSLException& e) {
    giveBack(false);
    Error err = Error::unavailable("TLS with " + uri.getHost() + " failed: " + e.displayText());
    err.retriable = false;  // a certificate problem does not fix itself on retry
    return err;
  } catch (const Poco::Exception& e) {
    giveBack(false);
    return Error::unavailable("HTTP to " + uri.getHost() + " failed: " + e.displayText());
  } catch (const std::exception& e) {
    giveBack(false);
    return Error::unavailable(std::string("HTTP failed: ") + e.what());
  }
}

}  // namespace ticketflow::http
