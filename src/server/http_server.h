// HttpServer: HTTP/1.1 over POSIX sockets with a thread per connection (hundreds of long SSE streams are normal),
// header/body limits, a per-request receive deadline so slow or stalled clients only cost their own thread,
// and a graceful stop (no new connections; in-flight handlers run to the end).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>

#include "server/http.h"

namespace moeinfer::server {

struct HttpServerConfig {
    std::string host = "127.0.0.1";
    int port = 8080;                          // 0: any free port (see HttpServer::port())
    size_t max_header_bytes = 16 * 1024;      // request line + headers; beyond → 431
    size_t max_body_bytes = 8 * 1024 * 1024;  // beyond → 413
    int request_timeout_ms = 30000;           // the whole request (head + body) must arrive within this → 408
    int idle_timeout_ms = 10000;              // keep-alive: how long to wait for the next request
    int send_timeout_ms = 30000;              // a client that stops reading fails the write after this
    int max_connections = 2048;               // beyond → 503 and close
};

class HttpServer {
public:
    HttpServer(HttpServerConfig config, const Router& router);
    ~HttpServer();  // stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    void start();  // binds and listens (throws std::runtime_error naming host:port), then accepts on a thread
    int port() const { return port_; }
    // Stops accepting, closes idle keep-alive connections and waits until every in-flight handler returned.
    void stop();
    int active_connections() const;

private:
    void accept_loop();
    void serve_connection(int fd);

    HttpServerConfig config_;
    const Router& router_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread accept_thread_;
    mutable std::mutex mu_;
    std::condition_variable idle_cv_;
    int connections_ = 0;
};

}  // namespace moeinfer::server
