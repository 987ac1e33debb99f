#pragma once
// The byte stream under a RedisClient: one TCP connection to one Redis server, optionally TLS
// (OpenSSL), with a timeout on every wait. Commands are framed and replies parsed by the client
// (hiredis's reader); this only carries bytes, because Debian 12's hiredis 0.14 has no TLS and
// one transport for both keeps plain and TLS connections behaving alike (timeouts, errors).
//
// Threading: one thread at a time, like the client that owns it. Errors: a peer that is down,
// slow or gone is a retriable kUnavailable / kTimeout; a server whose certificate the configured
// trust does not accept is kInvalidArgument (retrying cannot fix it; the operator must).

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/client.hpp"

typedef struct ssl_st SSL;

namespace ticketflow::redis {

class Transport {
 public:
  // Connects to host:port within `connect_timeout` (and completes the TLS handshake, verifying
  // the server, when `tls` is given); every later read or write waits at most `io_timeout`.
  static Result<std::unique_ptr<Transport>> open(const std::string& host, int port, const TlsClientContext* tls,
                                                 std::chrono::milliseconds connect_timeout,
                                                 std::chrono::milliseconds io_timeout);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  Status writeAll(std::string_view bytes);
  // Reads what is there (at least one byte, at most `capacity`); the server closing is an error.
  Result<std::size_t> readSome(char* buffer, std::size_t capacity);

  // "host:port", for messages.
  const std::string& peer() const { return peer_; }
  // The server asked for a client certificate during the handshake and none is configured.
  void certificateRequested() { certificate_requested_ = true; }

 private:
  Transport(int fd, std::string peer, std::chrono::milliseconds io_timeout)
      : fd_(fd), peer_(std::move(peer)), io_timeout_(io_timeout) {}
  Status handshake(const TlsClientContext& tls, const std::string& host, std::chrono::milliseconds timeout);
  Error lostTls();  // the error for a TLS read or write that failed

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool certificate_requested_ = false;
  bool answered_ = false;  // a first byte came back after the handshake
  std::string peer_;
  std::chrono::milliseconds io_timeout_;
};

}  // namespace ticketflow::redis
