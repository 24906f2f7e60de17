// HttpServer: accept loop, per-connection request reading under limits and deadlines, responses and SSE writes.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace moeinfer::server {
namespace {

using Clock = std::chrono::steady_clock;

int ms_until(Clock::time_point deadline) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return ms < 0 ? 0 : static_cast<int>(ms);
}

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;  // includes EAGAIN after SO_SNDTIMEO: a client that stopped reading
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

enum class ReadResult { Data, Eof, Timeout, Stopping };

// The socket's exchange: tracks whether the handler answered and how (a stream means the connection closes).
class SocketExchange : public HttpExchange {
public:
    SocketExchange(int fd, bool keep_alive, const std::atomic<bool>& stopping)
        : fd_(fd), keep_alive_(keep_alive), stopping_(stopping) {}
    void respond(const HttpResponse& r) override {
        if (started_) return;
        started_ = true;
        keep_alive_ = keep_alive_ && !stopping_.load();  // a stop that began during the handler ends the connection
        std::string out = response_head(r.status, r.content_type, r.headers, r.body.size(), keep_alive_);
        out += r.body;
        ok_ = send_all(fd_, out);
    }
    bool begin_stream(int status, const std::string& content_type, const Headers& headers) override {
        if (started_) return false;
        started_ = streamed_ = true;
        Headers h = headers;
        h.emplace_back("Cache-Control", "no-cache");
        ok_ = send_all(fd_, response_head(status, content_type, h, std::nullopt, false));
        return ok_;
    }
    bool write(std::string_view data) override {
        if (!ok_) return false;
        ok_ = send_all(fd_, data);
        return ok_;
    }
    bool client_gone() override {
        if (!ok_) return true;
        pollfd p{fd_, POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
        char c;
        ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0;  // > 0: the client already sent its next request (pipelining), not a disconnect
    }
    bool started() const override { return started_; }
    bool reusable() const { return started_ && ok_ && !streamed_ && keep_alive_; }

private:
    int fd_;
    bool keep_alive_;
    const std::atomic<bool>& stopping_;
    bool started_ = false, streamed_ = false, ok_ = true;
};

}  // namespace

HttpServer::HttpServer(HttpServerConfig config, const Router& router) : config_(std::move(config)), router_(router) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string where = config_.host + ":" + std::to_string(config_.port);
    int rc = ::getaddrinfo(config_.host.c_str(), std::to_string(config_.port).c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("serve: cannot resolve " + where + ": " + gai_strerror(rc));
    std::string err = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 512) == 0) {
            listen_fd_ = fd;
            break;
        }
        err = std::strerror(errno);
        ::close(fd);
    }
    ::freeaddrinfo(res);
    if (listen_fd_ < 0) throw std::runtime_error("serve: cannot listen on " + where + ": " + err);
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    accept_thread_ = std::thread([this] { accept_loop(); });
}

void HttpServer::stop() {
    stopping_.store(true);
    if (accept_thread_.joinable()) accept_thread_.join();
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        listen_fd_ = -1;
    }
    // Connection threads notice stopping_ between requests (they poll in short slices) and finish in-flight work.
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait(lock, [&] { return connections_ == 0; });
}

int HttpServer::active_connections() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connections_;
}

void HttpServer::accept_loop() {
    while (!stopping_.load()) {
        pollfd p{listen_fd_, POLLIN, 0};
        // A short poll instead of a blocking accept: stop() needs no cross-thread socket tricks to wake us.
        if (::poll(&p, 1, 100) <= 0) continue;
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // SSE events are small and latency-bound
        timeval tv{config_.send_timeout_ms / 1000, (config_.send_timeout_ms % 1000) * 1000};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (connections_ >= config_.max_connections) {
                HttpResponse r = router_.error(503, "too many connections");
                send_all(fd, response_head(503, r.content_type, {{"Retry-After", "1"}}, r.body.size(), false) + r.body);
                ::close(fd);
                continue;
            }
            ++connections_;
        }
        try {
            std::thread([this, fd] { serve_connection(fd); }).detach();
        } catch (const std::system_error&) {  // out of threads: refuse this one, keep serving the rest
            ::close(fd);
            std::lock_guard<std::mutex> lock(mu_);
            --connections_;
        }
    }
}

void HttpServer::serve_connection(int fd) {
    std::string buf;
    // Reads more bytes until `deadline`; polls in short slices so an idle connection sees stop() promptly.
    auto read_more = [&](Clock::time_point deadline, bool idle) -> ReadResult {
        char chunk[16384];
        for (;;) {
            if (idle && buf.empty() && stopping_.load()) return ReadResult::Stopping;
            int wait = std::min(ms_until(deadline), 100);
            pollfd p{fd, POLLIN, 0};
            int r = ::poll(&p, 1, wait);
            if (r < 0 && errno != EINTR) return ReadResult::Eof;
            if (r > 0) {
                ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
                if (n > 0) {
                    buf.append(chunk, static_cast<size_t>(n));
                    return ReadResult::Data;
                }
                if (n == 0 || (errno != EINTR && errno != EAGAIN)) return ReadResult::Eof;
            }
            if (Clock::now() >= deadline) return ReadResult::Timeout;
        }
    };
    auto fail = [&](int status, const std::string& message) {
        HttpResponse r = router_.error(status, message);
        send_all(fd, response_head(status, r.content_type, r.headers, r.body.size(), false) + r.body);
    };

    for (;;) {
        // Head: the idle deadline until the first byte, then the request deadline from that moment.
        auto deadline = Clock::now() + std::chrono::milliseconds(config_.idle_timeout_ms);
        bool idle = buf.empty();
        size_t end = std::string::npos;
        bool closed = false;
        while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
            if (buf.size() > config_.max_header_bytes) break;
            ReadResult r = read_more(deadline, idle);
            if (r == ReadResult::Data && idle) {
                idle = false;
                deadline = Clock::now() + std::chrono::milliseconds(config_.request_timeout_ms);
            } else if (r == ReadResult::Timeout) {
                if (!buf.empty()) fail(408, "request not received in time");
                closed = true;
                break;
            } else if (r != ReadResult::Data) {
                closed = true;
                break;
            }
        }
        if (closed) break;
        if (end == std::string::npos || end + 4 > config_.max_header_bytes) {
            fail(431, "request header exceeds " + std::to_string(config_.max_header_bytes) + " bytes");
            break;
        }
        HttpRequest req;
        std::string error;
        if (int status = parse_request_head(std::string_view(buf).substr(0, end), req, error)) {
            fail(status, error);
            break;
        }
        buf.erase(0, end + 4);
        size_t length = 0;
        try {
            if (req.header("transfer-encoding")) {
                fail(501, "Transfer-Encoding request bodies are not supported; send Content-Length");
                break;
            }
            length = content_length(req).value_or(0);
        } catch (const std::invalid_argument& e) {
            fail(400, e.what());
            break;
        }
        if (length > config_.max_body_bytes) {
            fail(413, "request body of " + std::to_string(length) + " bytes exceeds the limit of " +
                          std::to_string(config_.max_body_bytes));
            break;
        }
        if (const std::string* expect = req.header("expect"); expect && length > 0 && buf.size() < length)
            if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) break;
        while (buf.size() < length) {
            ReadResult r = read_more(deadline, false);
            if (r == ReadResult::Timeout) fail(408, "request body not received in time");
            if (r != ReadResult::Data) {
                closed = true;
                break;
            }
        }
        if (closed) break;
        req.body = buf.substr(0, length);
        buf.erase(0, length);
        SocketExchange ex(fd, req.keep_alive(), stopping_);
        router_.dispatch(req, ex);
        if (!ex.started()) ex.respond(router_.error(500, "handler sent no response"));
        if (!ex.reusable() || stopping_.load()) break;
    }
    // Lingering close: closing with unread input would send a reset that can destroy the response we just sent
    // (e.g. a 413 before the body was read), so read and drop input briefly until the client closes.
    ::shutdown(fd, SHUT_WR);
    auto linger_end = Clock::now() + std::chrono::milliseconds(500);
    char sink[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, ms_until(linger_end)) <= 0) break;
        if (::recv(fd, sink, sizeof sink, 0) <= 0) break;
    }
    ::close(fd);
    std::lock_guard<std::mutex> lock(mu_);
    if (--connections_ == 0) idle_cv_.notify_all();
}

}  // namespace moeinfer::server
