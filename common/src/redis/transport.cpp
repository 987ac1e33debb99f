#include "transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "ticketflow/config/config.hpp"

namespace ticketflow::redis {
namespace {

using Clock = std::chrono::steady_clock;

std::string systemError(int error) { return std::strerror(error); }

// The most recent OpenSSL error of this thread, or `fallback` when its queue is empty.
std::string openSslError(const std::string& fallback) {
  unsigned long code = 0;
  unsigned long last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return fallback;
  char text[256];
  ERR_error_string_n(last, text, sizeof text);
  return text;
}

bool isIpLiteral(const std::string& host) {
  in6_addr address{};
  return inet_pton(AF_INET, host.c_str(), &address) == 1 || inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

// Waits until `fd` is ready for `events` or `timeout` passes.
Status waitFor(int fd, short events, std::chrono::milliseconds timeout, const std::string& peer) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Error::timeout("Redis " + peer + ": no answer within " + std::to_string(timeout.count()) + " ms");
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready > 0) return {};  // readable, writable, or an error the next call reports
    if (ready < 0 && errno != EINTR) return Error::unavailable("Redis " + peer + ": poll: " + systemError(errno));
  }
}

// OpenSSL writes to the socket with write(2), which raises SIGPIPE when the server has gone;
// a process that has not chosen a disposition for it should see an error, not die.
void ignoreSigpipeUnlessHandled() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  });
}

}  // namespace

Result<std::shared_ptr<const TlsClientContext>> TlsClientContext::make(const RedisTlsConfig& options) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return Error::internal("TLS: " + openSslError("cannot create a context"));
  std::shared_ptr<const TlsClientContext> made(new TlsClientContext(ctx, options.server_name));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1)
      return Error::invalidArgument(options.ca_file + ": not a readable PEM bundle of CA certificates (" +
                                    openSslError("no certificate") + ")");
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return Error::invalidArgument("TLS: cannot load the system's CA certificates (" + openSslError("unknown") + ")");
  }
  if (options.cert_file.empty() != options.key_file.empty())
    return Error::invalidArgument("a client certificate needs both cert_file and key_file");
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1)
      return Error::invalidArgument(options.cert_file + ": not a readable PEM certificate (" + openSslError("unknown") + ")");
    if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return Error::invalidArgument(options.key_file + ": not a readable PEM private key, or not the key of " +
                                    options.cert_file + " (" + openSslError("unknown") + ")");
    if (SSL_CTX_check_private_key(ctx) != 1)
      return Error::invalidArgument(options.key_file + ": the key does not match " + options.cert_file);
  }
  return made;
}

TlsClientContext::~TlsClientContext() { SSL_CTX_free(ctx_); }

Result<std::unique_ptr<Transport>> Transport::open(const std::string& host, int port, const TlsClientContext* tls,
                                                   std::chrono::milliseconds connect_timeout,
                                                   std::chrono::milliseconds io_timeout) {
  const std::string peer = host + ":" + std::to_string(port);
  const auto deadline = Clock::now() + connect_timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return Error::unavailable("Redis connect to " + peer + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);

  std::string last_error = "no address";
  for (const addrinfo* a = addresses.get(); a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = systemError(errno);
      continue;
    }
    std::unique_ptr<Transport> transport(new Transport(fd, peer, io_timeout));
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last_error = systemError(errno);
        continue;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (auto ready = waitFor(fd, POLLOUT, std::max(left, std::chrono::milliseconds(1)), peer); !ready) {
        last_error = "connect timed out after " + std::to_string(connect_timeout.count()) + " ms";
        continue;
      }
      int error = 0;
      socklen_t length = sizeof error;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      if (error != 0) {
        last_error = systemError(error);
        continue;
      }
    }
    const int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // a pipeline is one write; send it now
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);  // notice a peer that vanished
    if (tls) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (auto shaken = transport->handshake(*tls, host, std::max(left, std::chrono::milliseconds(1))); !shaken)
        return shaken.error();
    }
    return transport;
  }
  return Error::unavailable("Redis connect to " + peer + ": " + last_error);
}

Status Transport::handshake(const TlsClientContext& tls, const std::string& host, std::chrono::milliseconds timeout) {
  ignoreSigpipeUnlessHandled();
  ERR_clear_error();
  ssl_ = SSL_new(tls.get());
  if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) return Error::internal("Redis TLS to " + peer_ + ": " + openSslError("SSL_new"));
  const std::string& name = tls.nameFor(host);
  if (isIpLiteral(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, name.c_str());  // SNI carries names only (RFC 6066)
    SSL_set1_host(ssl_, name.c_str());
  }
  const auto deadline = Clock::now() + timeout;
  while (true) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl_);
    if (rc == 1) return {};
    const int why = SSL_get_error(ssl_, rc);
    if (why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Error::timeout("Redis TLS handshake with " + peer_ + " timed out");
      if (auto ready = waitFor(fd_, why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left, peer_); !ready) return ready;
      continue;
    }
    const long verified = SSL_get_verify_result(ssl_);
    if (verified != X509_V_OK)
      return Error::invalidArgument("Redis TLS: the certificate of " + peer_ + " is not trusted for \"" + name +
                                    "\": " + X509_verify_cert_error_string(verified) +
                                    " (check redis.tls.ca_file and redis.tls.server_name)");
    return Error::unavailable("Redis TLS handshake with " + peer_ + ": " +
                              openSslError(why == SSL_ERROR_SYSCALL ? "connection closed" : "failed"));
  }
}

Transport::~Transport() {
  if (ssl_) SSL_free(ssl_);  // no close_notify: the connection may be broken, and Redis does not need one
  if (fd_ >= 0) ::close(fd_);
}

Status Transport::writeAll(std::string_view bytes) {
  while (!bytes.empty()) {
    if (ssl_) {
      ERR_clear_error();
      const int n = SSL_write(ssl_, bytes.data(), static_cast<int>(std::min<std::size_t>(bytes.size(), 1 << 30)));
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      const int why = SSL_get_error(ssl_, n);
      if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE)
        return Error::unavailable("Redis " + peer_ + ": " + openSslError("connection lost"));
      if (auto ready = waitFor(fd_, why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, io_timeout_, peer_); !ready) return ready;
      continue;
    }
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto ready = waitFor(fd_, POLLOUT, io_timeout_, peer_); !ready) return ready;
    } else if (n < 0 && errno != EINTR) {
      return Error::unavailable("Redis " + peer_ + ": " + systemError(errno));
    }
  }
  return {};
}

Result<std::size_t> Transport::readSome(char* buffer, std::size_t capacity) {
  while (true) {
    if (ssl_) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, buffer, static_cast<int>(std::min<std::size_t>(capacity, 1 << 30)));
      if (n > 0) return static_cast<std::size_t>(n);
      const int why = SSL_get_error(ssl_, n);
      if (why == SSL_ERROR_ZERO_RETURN) return Error::unavailable("Redis " + peer_ + ": connection closed by the server");
      if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE)
        return Error::unavailable("Redis " + peer_ + ": " + openSslError("connection lost"));
      if (auto ready = waitFor(fd_, why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, io_timeout_, peer_); !ready)
        return ready.error();
      continue;
    }
    const ssize_t n = ::recv(fd_, buffer, capacity, 0);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) return Error::unavailable("Redis " + peer_ + ": connection closed by the server");
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto ready = waitFor(fd_, POLLIN, io_timeout_, peer_); !ready) return ready.error();
    } else if (errno != EINTR) {
      return Error::unavailable("Redis " + peer_ + ": " + systemError(errno));
    }
  }
}

}  // namespace ticketflow::redis
