// HttpServer over loopback sockets: keep-alive, limits (431/413), slow clients dropped with 408 while others are
// served, malformed requests, SSE writes failing once the client leaves, and a stop that waits for handlers.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "server/http_server.h"

namespace moeinfer::server {
namespace {

using namespace std::chrono_literals;

int connect_to(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
}

void send_str(int fd, const std::string& s) { ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), ssize_t(s.size())); }

// Reads until the peer closes, `until` appears, or `timeout` passes.
std::string read_some(int fd, std::chrono::milliseconds timeout, const std::string& until = {}) {
    std::string out;
    auto end = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, size_t(n));
        if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    return out;
}

std::string request(int port, const std::string& raw, std::chrono::milliseconds timeout = 2000ms) {
    int fd = connect_to(port);
    send_str(fd, raw);
    std::string r = read_some(fd, timeout);
    ::close(fd);
    return r;
}

struct ServerFixture : ::testing::Test {
    Router router;
    HttpServerConfig config;
    std::unique_ptr<HttpServer> server;
    std::atomic<bool> stream_saw_failure{false};
    std::atomic<int> slow_handlers_done{0};

    void SetUp() override {
        router.add("GET", "/hello", [](const HttpRequest& req, HttpExchange& ex) {
            HttpResponse r;
            r.content_type = "text/plain";
            r.body = "hello " + req.query;
            ex.respond(r);
        });
        router.add("POST", "/echo", [](const HttpRequest& req, HttpExchange& ex) {
            HttpResponse r;
            r.body = req.body;
            ex.respond(r);
        });
        router.add("GET", "/stream", [this](const HttpRequest&, HttpExchange& ex) {
            ex.begin_stream(200, "text/event-stream", {});
            for (int i = 0; i < 400; ++i) {
                if (!ex.write("data: " + std::string(1000, 'x') + "\n\n") || ex.client_gone()) {
                    stream_saw_failure = true;
                    return;
                }
                std::this_thread::sleep_for(5ms);
            }
        });
        router.add("GET", "/slow", [this](const HttpRequest&, HttpExchange& ex) {
            std::this_thread::sleep_for(300ms);
            HttpResponse r;
            r.body = "done";
            ex.respond(r);
            slow_handlers_done++;
        });
        config.port = 0;
        config.max_header_bytes = 1024;
        config.max_body_bytes = 100;
        config.request_timeout_ms = 300;
        config.idle_timeout_ms = 300;
    }
    void start() {
        server = std::make_unique<HttpServer>(config, router);
        server->start();
    }
};

TEST_F(ServerFixture, GetAndKeepAlive) {
    start();
    int fd = connect_to(server->port());
    send_str(fd, "GET /hello?a=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string r1 = read_some(fd, 1000ms, "hello a=1");
    EXPECT_EQ(r1.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r1;
    EXPECT_NE(r1.find("Connection: keep-alive"), std::string::npos);
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde");
    std::string r2 = read_some(fd, 1000ms);
    EXPECT_NE(r2.find("Content-Length: 5\r\nConnection: close\r\n\r\nabcde"), std::string::npos) << r2;
    ::close(fd);
}

TEST_F(ServerFixture, PipelinedRequestsInOnePacket) {
    start();
    std::string r = request(server->port(), "GET /hello?1 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello?2 HTTP/1.1\r\nHost: x\r\n"
                                            "Connection: close\r\n\r\n");
    EXPECT_NE(r.find("hello 1"), std::string::npos);
    EXPECT_NE(r.find("hello 2"), std::string::npos);
}

TEST_F(ServerFixture, RoutingErrors) {
    start();
    EXPECT_EQ(request(server->port(), "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").substr(9, 3), "404");
    std::string r = request(server->port(), "DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(r.substr(9, 3), "405");
    EXPECT_NE(r.find("Allow: POST"), std::string::npos);
}

TEST_F(ServerFixture, LimitsAndMalformedRequests) {
    start();
    const int port = server->port();
    EXPECT_EQ(request(port, "GET /hello HTTP/1.1\r\nHost: x\r\nX: " + std::string(2000, 'a') + "\r\n\r\n").substr(9, 3), "431");
    EXPECT_EQ(request(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n").substr(9, 3), "413");
    EXPECT_EQ(request(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n").substr(9, 3), "400");
    EXPECT_EQ(request(port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").substr(9, 3), "501");
    EXPECT_EQ(request(port, "garbage\r\n\r\n").substr(9, 3), "400");
    EXPECT_EQ(request(port, "GET /hello HTTP/1.1\r\n\r\n").substr(9, 3), "400");  // no Host
    // 100-continue: the body is sent only after the interim response.
    int fd = connect_to(port);
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    EXPECT_EQ(read_some(fd, 1000ms, "\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
    send_str(fd, "xyz");
    EXPECT_NE(read_some(fd, 1000ms, "xyz").find("xyz"), std::string::npos);
    ::close(fd);
}

TEST_F(ServerFixture, SlowClientGets408WithoutBlockingOthers) {
    start();
    const int port = server->port();
    int slow_head = connect_to(port);
    send_str(slow_head, "GET /hello HTTP/1.1\r\nHo");  // never finishes its head
    int slow_body = connect_to(port);
    send_str(slow_body, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    int silent = connect_to(port);  // connects and sends nothing: dropped after the idle timeout
    auto t0 = std::chrono::steady_clock::now();
    std::string fast = request(port, "GET /hello?fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(fast.find("hello fast"), std::string::npos);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
    EXPECT_EQ(read_some(slow_head, 2000ms).substr(9, 3), "408");
    EXPECT_EQ(read_some(slow_body, 2000ms).substr(9, 3), "408");
    EXPECT_EQ(read_some(silent, 2000ms), "");  // closed without a response
    for (int fd : {slow_head, slow_body, silent}) ::close(fd);
}

TEST_F(ServerFixture, StreamNoticesDisconnect) {
    start();
    int fd = connect_to(server->port());
    send_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string head = read_some(fd, 1000ms, "data: ");
    EXPECT_NE(head.find("Connection: close"), std::string::npos);
    EXPECT_EQ(head.find("Content-Length"), std::string::npos);
    ::close(fd);
    for (int i = 0; i < 100 && !stream_saw_failure; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(stream_saw_failure);
}

TEST_F(ServerFixture, StopWaitsForInFlightHandlersAndRefusesNewConnections) {
    start();
    const int port = server->port();
    int fd = connect_to(port);
    send_str(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    int idle = connect_to(port);  // an idle keep-alive connection must not hold up stop()
    std::this_thread::sleep_for(50ms);
    auto t0 = std::chrono::steady_clock::now();
    server->stop();
    EXPECT_EQ(slow_handlers_done.load(), 1);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
    std::string r = read_some(fd, 1000ms);
    EXPECT_NE(r.find("done"), std::string::npos);
    EXPECT_NE(r.find("Connection: close"), std::string::npos);  // no keep-alive while stopping
    ::close(fd);
    ::close(idle);
    int late = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_NE(::connect(late, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(late);
}

TEST_F(ServerFixture, ManyConcurrentConnections) {
    start();
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 64; ++i)
        threads.emplace_back([&, i] {
            std::string r = request(server->port(), "GET /hello?" + std::to_string(i) +
                                                        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            if (r.find("hello " + std::to_string(i)) != std::string::npos) ok++;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 64);
}

}  // namespace
}  // namespace moeinfer::server
