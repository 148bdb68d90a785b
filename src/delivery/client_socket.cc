// poll(2)-driven blocking client socket (see client_socket.h).
#include "delivery/client_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "base/fs.h"
#include "base/net.h"

namespace tern::delivery {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, clamped to [0, INT_MAX] for poll(2).
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  if (left > 0x7fffffff) return 0x7fffffff;
  return static_cast<int>(left);
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timeout, -1 error (errno set).
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    return rc;
  }
}

// Non-blocking connect of one address, finished within the deadline.
Result<int> connect_one(int family, const sockaddr* addr, socklen_t len, const std::string& what,
                        Clock::time_point deadline) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::temp("4.4.1", fs::errno_text("socket", errno));
  if (family != AF_UNIX) {
    // Commands are written whole (pipelined groups in one send): without
    // this, Nagle holds back the end of a message until the peer's delayed
    // ACK, 40 ms per transaction.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (::connect(fd, addr, len) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      int e = errno;
      ::close(fd);
      return Error::temp("4.4.1", fs::errno_text("connect " + what, e));
    }
    int rc = wait_for(fd, POLLOUT, deadline);
    if (rc == 0) {
      ::close(fd);
      return Error::temp("4.4.2", "connect " + what + ": timed out");
    }
    int err = 0;
    socklen_t err_len = sizeof err;
    if (rc < 0) err = errno;
    else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) err = errno;
    if (err != 0) {
      ::close(fd);
      return Error::temp("4.4.1", fs::errno_text("connect " + what, err));
    }
  }
  return fd;
}

std::string openssl_error_text() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// A socket BIO that sends with MSG_NOSIGNAL, so a peer that resets the
// connection during a TLS write gives an error value instead of SIGPIPE
// (OpenSSL's own socket BIO uses write(2)). The fd is kept as the BIO's data.
int nosignal_bio_fd(BIO* bio) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio))); }

int nosignal_bio_write(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  ssize_t n = ::send(nosignal_bio_fd(bio), data, static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int nosignal_bio_read(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  ssize_t n = ::recv(nosignal_bio_fd(bio), data, static_cast<size_t>(size), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(bio);
  return static_cast<int>(n);
}

long nosignal_bio_ctrl(BIO* bio, int cmd, long num, void* ptr) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int nosignal_bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* nosignal_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern-nosignal-socket");
    BIO_meth_set_write(m, nosignal_bio_write);
    BIO_meth_set_read(m, nosignal_bio_read);
    BIO_meth_set_ctrl(m, nosignal_bio_ctrl);
    BIO_meth_set_create(m, nosignal_bio_create);
    return m;
  }();
  return method;
}

bool is_ip_literal(const std::string& host) {
  in6_addr buf;
  return ::inet_pton(AF_INET, host.c_str(), &buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), &buf) == 1;
}

}  // namespace

namespace {

Result<std::shared_ptr<SSL_CTX>> client_context(const std::string& ca_file, bool system_store) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return Error::local("TLS client context: " + openssl_error_text());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Verification runs and is recorded, but never aborts the handshake; the
  // caller's policy decides what an unverified peer means.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (system_store) SSL_CTX_set_default_verify_paths(ctx.get());
  if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
    return Error::local("TLS trust anchors " + ca_file + ": " + openssl_error_text());
  }
  ERR_clear_error();
  return ctx;
}

}  // namespace

Result<std::shared_ptr<SSL_CTX>> make_client_tls_context(const std::string& ca_file) {
  return client_context(ca_file, true);
}

Result<std::shared_ptr<SSL_CTX>> make_client_tls_context_only(const std::string& ca_file) {
  if (ca_file.empty()) return Error::local("TLS trust anchors: no CA file given");
  auto ctx = client_context(ca_file, false);
  if (!ctx) return ctx;
  X509_STORE* store = SSL_CTX_get_cert_store(ctx->get());
  STACK_OF(X509_OBJECT)* objects = store != nullptr ? X509_STORE_get0_objects(store) : nullptr;
  if (objects == nullptr || sk_X509_OBJECT_num(objects) == 0) {
    return Error::local("TLS trust anchors " + ca_file + ": no certificate in the file");
  }
  return ctx;
}

Result<Endpoint> Endpoint::parse(std::string_view text, uint16_t default_port) {
  Endpoint ep;
  if (text.substr(0, 5) == "unix:") text.remove_prefix(5), ep.is_unix = true;
  else if (!text.empty() && text[0] == '/') ep.is_unix = true;
  if (ep.is_unix) {
    if (text.empty() || text[0] != '/') return Error::temp("4.3.5", "unix socket path must be absolute");
    if (text.size() >= sizeof(sockaddr_un::sun_path)) return Error::temp("4.3.5", "unix socket path too long");
    ep.path = std::string(text);
    return ep;
  }
  auto hp = HostPort::parse(text, default_port);
  if (!hp || hp->host.empty() || hp->port == 0) {
    return Error::temp("4.3.5", "bad endpoint \"" + std::string(text) + "\" (want unix:/path or host:port)");
  }
  ep.host = hp->host;
  ep.port = hp->port;
  return ep;
}

std::string Endpoint::to_string() const {
  if (is_unix) return "unix:" + path;
  return HostPort{host, port}.to_string();
}

ClientSocket::~ClientSocket() { close(); }

ClientSocket::ClientSocket(ClientSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      limits_(other.limits_),
      reader_(std::move(other.reader_)) {}

ClientSocket& ClientSocket::operator=(ClientSocket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    ssl_ = std::exchange(other.ssl_, nullptr);
    limits_ = other.limits_;
    reader_ = std::move(other.reader_);
  }
  return *this;
}

void ClientSocket::close() {
  if (ssl_ != nullptr) {
    // One non-blocking close_notify attempt; the peer's answer is not awaited.
    SSL_shutdown(ssl_);
    SSL_free(ssl_);
    ssl_ = nullptr;
    ERR_clear_error();
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<ClientSocket> ClientSocket::connect(const Endpoint& endpoint, Duration timeout, ReplyLimits limits) {
  auto deadline = Clock::now() + timeout;
  std::string what = endpoint.to_string();
  if (endpoint.is_unix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (endpoint.path.size() >= sizeof sun.sun_path) return Error::temp("4.3.5", what + ": path too long");
    std::memcpy(sun.sun_path, endpoint.path.data(), endpoint.path.size());
    auto fd = connect_one(AF_UNIX, reinterpret_cast<sockaddr*>(&sun), sizeof sun, what, deadline);
    if (!fd) return fd.error();
    return ClientSocket(*fd, limits);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  std::string port = std::to_string(endpoint.port);
  int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) return Error::temp("4.4.3", what + ": " + ::gai_strerror(rc));
  Error last = Error::temp("4.4.1", what + ": no addresses");
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    auto fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, what, deadline);
    if (fd) {
      ::freeaddrinfo(list);
      return ClientSocket(*fd, limits);
    }
    last = fd.error();
    if (remaining_ms(deadline) == 0) break;
  }
  ::freeaddrinfo(list);
  return last;
}

Status ClientSocket::send(std::string_view data, Duration timeout) {
  if (fd_ < 0) return Error::temp("4.4.2", "connection closed");
  auto deadline = Clock::now() + timeout;
  if (ssl_ != nullptr) {
    while (!data.empty()) {
      ERR_clear_error();
      size_t written = 0;
      int rc = SSL_write_ex(ssl_, data.data(), data.size(), &written);
      if (rc == 1) {
        data.remove_prefix(written);
        continue;
      }
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        int ready = wait_for(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (ready == 0) return Error::temp("4.4.2", "timed out sending to server");
        if (ready < 0) return Error::temp("4.4.2", fs::errno_text("poll", errno));
        continue;
      }
      std::string detail = err == SSL_ERROR_SYSCALL && errno != 0 ? fs::errno_text("send", errno)
                                                                    : "TLS error: " + openssl_error_text();
      return Error::temp("4.4.2", detail);
    }
    return ok();
  }
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_for(fd_, POLLOUT, deadline);
      if (rc == 0) return Error::temp("4.4.2", "timed out sending to server");
      if (rc < 0) return Error::temp("4.4.2", fs::errno_text("poll", errno));
      continue;
    }
    return Error::temp("4.4.2", fs::errno_text("send", errno));
  }
  return ok();
}

Result<size_t> ClientSocket::receive_some(char* buf, size_t size, Clock::time_point deadline) {
  for (;;) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      errno = 0;
      size_t got = 0;
      int rc = SSL_read_ex(ssl_, buf, size, &got);
      if (rc == 1) return got;
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_ZERO_RETURN) return size_t{0};
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        int ready = wait_for(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (ready == 0) return Error::temp("4.4.2", "timed out waiting for server reply");
        if (ready < 0) return Error::temp("4.4.2", fs::errno_text("poll", errno));
        continue;
      }
      if (err == SSL_ERROR_SYSCALL && errno == 0) return size_t{0};  // EOF without close_notify
      std::string detail = err == SSL_ERROR_SYSCALL ? fs::errno_text("recv", errno)
                                                    : "TLS error: " + openssl_error_text();
      return Error::temp("4.4.2", detail);
    }
    ssize_t n = ::recv(fd_, buf, size, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int rc = wait_for(fd_, POLLIN, deadline);
      if (rc == 0) return Error::temp("4.4.2", "timed out waiting for server reply");
      if (rc < 0) return Error::temp("4.4.2", fs::errno_text("poll", errno));
      continue;
    }
    return Error::temp("4.4.2", fs::errno_text("recv", errno));
  }
}

Result<Reply> ClientSocket::read_reply(Duration timeout) {
  if (fd_ < 0) return Error::temp("4.4.2", "connection closed");
  auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto next = reader_.next();
    if (!next) return next.error();
    if (next.value()) return std::move(*next.value());
    auto n = receive_some(buf, sizeof buf, deadline);
    if (!n) return n.error();
    if (*n == 0) return Error::temp("4.4.2", "connection closed by server");
    reader_.feed(std::string_view(buf, *n));
  }
}

Result<std::string> ClientSocket::read_exact(size_t count, Duration timeout) {
  if (fd_ < 0) return Error::temp("4.4.2", "connection closed");
  auto deadline = Clock::now() + timeout;
  std::string out(count, '\0');
  size_t have = 0;
  while (have < count) {
    // Never read past `count`: what follows belongs to the next protocol layer.
    auto n = receive_some(out.data() + have, count - have, deadline);
    if (!n) return n.error();
    if (*n == 0) return Error::temp("4.4.2", "connection closed by server");
    have += *n;
  }
  return out;
}

Result<TlsSessionInfo> ClientSocket::start_tls(SSL_CTX* context, const TlsHandshakeParams& params,
                                               Duration timeout) {
  if (fd_ < 0) return Error::temp("4.4.2", "connection closed");
  if (ssl_ != nullptr) return Error::local("TLS is already active");  // RFC 3207 §4.2
  auto deadline = Clock::now() + timeout;
  reader_ = ReplyReader(limits_);  // anything sent in clear after the go-ahead is discarded
  auto fail = [&](std::string text) {
    close();
    return Error::temp("4.7.5", "TLS handshake failed: " + text);
  };
  ERR_clear_error();
  ssl_ = SSL_new(context);
  BIO* bio = ssl_ != nullptr ? BIO_new(nosignal_bio_method()) : nullptr;
  if (bio == nullptr) return fail(openssl_error_text());
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd_)));
  SSL_set_bio(ssl_, bio, bio);
  if (!params.sni.empty() && !is_ip_literal(params.sni)) SSL_set_tlsext_host_name(ssl_, params.sni.c_str());
  // RFC 6125 name matching is done by OpenSSL during chain verification.
  SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  for (size_t i = 0; i < params.verify_names.size(); ++i) {
    const char* name = params.verify_names[i].c_str();
    int rc = i == 0 ? SSL_set1_host(ssl_, name) : SSL_add1_host(ssl_, name);
    if (rc != 1) return fail("bad verify name " + params.verify_names[i]);
  }
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl_);
    if (rc == 1) break;
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      int ready = wait_for(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (ready == 0) return fail("timed out");
      if (ready < 0) return fail(fs::errno_text("poll", errno));
      continue;
    }
    if (err == SSL_ERROR_SYSCALL) return fail(errno != 0 ? fs::errno_text("connection", errno) : "connection closed");
    return fail(openssl_error_text());
  }

  TlsSessionInfo info;
  info.version = SSL_get_version(ssl_);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_)) {
    info.cipher = SSL_CIPHER_get_name(cipher);
    info.bits = SSL_CIPHER_get_bits(cipher, nullptr);
  }
  X509* peer = SSL_get1_peer_certificate(ssl_);
  long verify = SSL_get_verify_result(ssl_);
  if (peer == nullptr) {
    info.verify_error = "no server certificate";
  } else {
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
    info.peer_subject = subject;
    X509_free(peer);
    info.verified = verify == X509_V_OK;
    if (!info.verified) info.verify_error = X509_verify_cert_error_string(verify);
  }
  ERR_clear_error();
  return info;
}

}  // namespace tern::delivery
