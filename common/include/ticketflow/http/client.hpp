#pragma once
// HTTP/1.1 client for model providers and ticket systems (Poco underneath): keep-alive
// connections pooled per host, connect/read/total timeouts, TLS with certificate verification
// against the system CAs, and the usual HTTP(S)_PROXY / NO_PROXY settings. Thread-safe: many
// threads may send at once; at most `max_connections` requests per host are in flight, others
// wait (bounded by the total timeout). Never logs headers or bodies (they carry API keys and
// ticket text).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/result.hpp"

namespace ticketflow::http {

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds read_timeout{60000};
  std::chrono::milliseconds total_timeout{90000};  // whole request, waiting for a connection included
  int max_connections = 64;                        // per host
  ProxyConfig proxy;
  std::string ca_file;  // extra CA bundle; empty: the system's
  // A response body past this is refused (kMalformed): a peer that sends without end must not
  // take the process's memory. Model replies and sink answers are kilobytes.
  std::size_t max_response_bytes = 16 << 20;
};

struct ClientRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/json";
};

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpClientStats {
  std::int64_t requests = 0;
  std::int64_t connections_opened = 0;  // requests - connections_opened = reused keep-alive
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request. A response with any status is a success here; transport failures are
  // errors: kTimeout (retriable), kUnavailable (retriable for connection problems, not for TLS
  // verification failures), kInvalidArgument for a bad URL.
  Result<ClientResponse> send(const ClientRequest& request);
  HttpClientStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The client a provider's config asks for: its timeouts and connection bound, with the proxy.
HttpClientOptions providerClientOptions(const ProviderConfig& provider, const ProxyConfig& proxy);

// `base` + `path` with exactly one slash between them ("https://api.x/v1/" + "/embeddings").
std::string joinUrl(const std::string& base, const std::string& path);

// Whether `host` bypasses the proxy under a NO_PROXY list ("*", exact hosts, ".suffix" or "suffix").
bool bypassesProxy(const std::string& host, const std::string& no_proxy);

}  // namespace ticketflow::http
