#include "transport.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ticketflow/config/config.hpp"

namespace ticketflow::redis {
namespace {

using Clock = std::chrono::steady_clock;

std::string systemError(int error) {
  return std::strerror(error);
}

// The most recent OpenSSL error of this thread (its queue is emptied), 0 when there is none.
unsigned long lastOpenSslError() {
  unsigned long code = 0;
  unsigned long last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  return last;
}

std::string describe(unsigned long code, const std::string& fallback) {
  if (code == 0) return fallback;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

std::string openSslError(const std::string& fallback) {
  return describe(lastOpenSslError(), fallback);
}

// The server's alerts that say it refused our client certificate (or wanted one): a setting to
// fix, not an outage to wait out.
bool clientCertificateRefused(unsigned long code) {
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return false;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      return true;
    default:
      return false;
  }
}

// A failed TLS operation with `peer`, from this thread's OpenSSL errors.
Error tlsFailure(const std::string& peer, const std::string& what, const std::string& fallback) {
  const unsigned long code = lastOpenSslError();
  if (clientCertificateRefused(code))
    return Error::invalidArgument("Redis TLS: " + peer + " refused our client certificate, or requires one (" +
                                  describe(code, fallback) + "; check redis.tls.cert_file and redis.tls.key_file)");
  return Error::unavailable("Redis " + what + " " + peer + ": " + describe(code, fallback));
}

// The socket under a TLS connection, as an OpenSSL BIO: OpenSSL's own socket BIO writes with
// write(2), which raises SIGPIPE when the server has gone; send(MSG_NOSIGNAL) reports it instead.
int bioWrite(BIO* bio, const char* data, int length) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
  const ssize_t n = ::send(fd, data, static_cast<std::size_t>(length), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int bioRead(BIO* bio, char* data, int length) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
  const ssize_t n = ::recv(fd, data, static_cast<std::size_t>(length), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(bio);
  return static_cast<int>(n);
}

long bioControl(BIO*, int command, long, void*) {
  return command == BIO_CTRL_FLUSH ? 1 : 0;
}

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* socketBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ticketflow socket");
    if (m) {
      BIO_meth_set_write(m, bioWrite);
      BIO_meth_set_read(m, bioRead);
      BIO_meth_set_ctrl(m, bioControl);
      BIO_meth_set_create(m, bioCreate);
    }
    return m;
  }();
  return method;
}

// Called when the server asks for a client certificate and none is configured: note it (see
// Transport::lostTls) and go on without one, as servers with tls-auth-clients optional allow.
int noteCertificateRequest(SSL* ssl, X509**, EVP_PKEY**) {
  if (auto* transport = static_cast<Transport*>(SSL_get_app_data(ssl))) transport->certificateRequested();
  return 0;
}

using SslContextHandle = std::shared_ptr<SSL_CTX>;

// A client context from the files: TLS 1.2 or newer, the server verified against the CA bundle
// (or the system's store), the client certificate if configured.
Result<SslContextHandle> buildSslContext(const RedisTlsConfig& options) {
  ERR_clear_error();
  SslContextHandle ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return Error::internal("TLS: " + openSslError("cannot create a context"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1)
      return Error::invalidArgument(options.ca_file + ": not a readable PEM bundle of CA certificates (" +
                                    openSslError("no certificate") + ")");
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return Error::invalidArgument("TLS: cannot load the system's CA certificates (" + openSslError("unknown") + ")");
  }
  if (options.cert_file.empty() != options.key_file.empty())
    return Error::invalidArgument("a client certificate needs both cert_file and key_file");
  if (options.cert_file.empty()) SSL_CTX_set_client_cert_cb(ctx.get(), noteCertificateRequest);
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str()) != 1)
      return Error::invalidArgument(options.cert_file + ": not a readable PEM certificate (" + openSslError("unknown") +
                                    ")");
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return Error::invalidArgument(options.key_file + ": not a readable PEM private key, or not the key of " +
                                    options.cert_file + " (" + openSslError("unknown") + ")");
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      return Error::invalidArgument(options.key_file + ": the key does not match " + options.cert_file);
  }
  return ctx;
}

std::vector<std::filesystem::file_time_type> stampsOf(const RedisTlsConfig& options) {
  std::vector<std::filesystem::file_time_type> stamps;
  for (const std::string* path : {&options.ca_file, &options.cert_file, &options.key_file}) {
    std::error_code ec;
    stamps.push_back(path->empty() ? std::filesystem::file_time_type{} : std::filesystem::last_write_time(*path, ec));
  }
  return stamps;
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
    if (left.count() <= 0)
      return Error::timeout("Redis " + peer + ": no answer within " + std::to_string(timeout.count()) + " ms");
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready > 0) return {};  // readable, writable, or an error the next call reports
    if (ready < 0 && errno != EINTR) return Error::unavailable("Redis " + peer + ": poll: " + systemError(errno));
  }
}

}  // namespace

Result<std::shared_ptr<const TlsClientContext>> TlsClientContext::make(const RedisTlsConfig& options) {
  auto stamps = stampsOf(options);
  auto ctx = buildSslContext(options);
  if (!ctx) return ctx.error();
  return std::shared_ptr<const TlsClientContext>(new TlsClientContext(options, std::move(*ctx), std::move(stamps)));
}

TlsClientContext::TlsClientContext(RedisTlsConfig options, std::shared_ptr<SSL_CTX> ctx,
                                   std::vector<std::filesystem::file_time_type> stamps)
    : options_(std::make_unique<const RedisTlsConfig>(std::move(options))),
      ctx_(std::move(ctx)),
      stamps_(std::move(stamps)) {}

TlsClientContext::~TlsClientContext() = default;

std::shared_ptr<SSL_CTX> TlsClientContext::current() const {
  std::lock_guard lock(mutex_);
  auto stamps = stampsOf(*options_);
  if (stamps != stamps_) {
    // A rotated certificate or CA (a Kubernetes Secret updated in place): new connections use
    // the new files. Half-written files fail to load; the last good context serves meanwhile.
    if (auto rebuilt = buildSslContext(*options_)) {
      ctx_ = std::move(*rebuilt);
      stamps_ = std::move(stamps);
    }
  }
  return ctx_;
}

const std::string& TlsClientContext::nameFor(const std::string& host) const {
  return options_->server_name.empty() ? host : options_->server_name;
}

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
  ERR_clear_error();
  const auto ctx = tls.current();
  ssl_ = SSL_new(ctx.get());  // holds its own reference to the context
  if (!ssl_) return Error::internal("Redis TLS to " + peer_ + ": " + openSslError("SSL_new"));
  BIO* bio = socketBioMethod() ? BIO_new(socketBioMethod()) : nullptr;
  if (!bio) return Error::internal("Redis TLS to " + peer_ + ": " + openSslError("BIO_new"));
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd_)));
  SSL_set_bio(ssl_, bio, bio);   // the connection owns the BIO now
  SSL_set_app_data(ssl_, this);  // for noteCertificateRequest
  const std::string& name = tls.nameFor(host);
  const bool name_set =
      isIpLiteral(name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str()) == 1
                        // SNI carries names only (RFC 6066)
                        : SSL_set_tlsext_host_name(ssl_, name.c_str()) == 1 && SSL_set1_host(ssl_, name.c_str()) == 1;
  if (!name_set) return Error::invalidArgument("Redis TLS: cannot check the server's name \"" + name + "\"");
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
    return tlsFailure(peer_, "TLS handshake with", why == SSL_ERROR_SYSCALL ? "connection closed" : "failed");
  }
}

Error Transport::lostTls() {
  Error error = tlsFailure(peer_, "at", "connection lost");
  // With TLS 1.3 a server that wants a client certificate says so only after the handshake, and
  // its alert can be lost to the reset that follows: a server that asked for a certificate we do
  // not have and then dropped the connection before its first answer has refused it.
  if (error.code != ErrorCode::kInvalidArgument && certificate_requested_ && !answered_)
    return Error::invalidArgument("Redis TLS: " + peer_ +
                                  " asked for a client certificate, none is configured, and it closed the "
                                  "connection: it refused our client certificate, or requires one (set "
                                  "redis.tls.cert_file and redis.tls.key_file)");
  return error;
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
      if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) return lostTls();
      if (auto ready = waitFor(fd_, why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, io_timeout_, peer_); !ready)
        return ready;
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
      if (n > 0) {
        answered_ = true;
        return static_cast<std::size_t>(n);
      }
      const int why = SSL_get_error(ssl_, n);
      if (why == SSL_ERROR_ZERO_RETURN) return lostTls();
      if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) return lostTls();
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
