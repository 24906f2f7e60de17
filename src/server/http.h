// HTTP/1.1 message types, the request-head parser, response serialization and the Router: everything of the
// HTTP layer that needs no socket (unit-tested directly; http_server.h adds the sockets and threads).
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moeinfer::server {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
    std::string method, target, path, query, version;  // path: target up to '?', query: after it
    Headers headers;                                   // names lower-cased, values trimmed
    std::string body;
    // The value of the first header called `lower_name`, or nullptr.
    const std::string* header(std::string_view lower_name) const;
    bool keep_alive() const;  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive"
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    Headers headers;
    std::string body;
};

const char* status_text(int status);

// Parses the request line and headers: `head` is everything before the blank line. Returns 0 when valid, else
// the status to answer (400 malformed, 505 unsupported version) with `error` saying why.
int parse_request_head(std::string_view head, HttpRequest& out, std::string& error);

// Content-Length of a parsed head: nullopt when absent; throws std::invalid_argument when malformed.
std::optional<size_t> content_length(const HttpRequest& req);

// Status line + headers + blank line. No Content-Length when `content_length` is empty (streams end by close).
std::string response_head(int status, const std::string& content_type, const Headers& headers,
                          std::optional<size_t> content_length, bool keep_alive);

// One request's connection as a handler sees it: either respond() once, or begin_stream() then write() chunks.
class HttpExchange {
public:
    virtual ~HttpExchange() = default;
    virtual void respond(const HttpResponse& r) = 0;
    // Sends the head of a response without a length (the connection closes after it). False if the client is gone.
    virtual bool begin_stream(int status, const std::string& content_type, const Headers& headers) = 0;
    virtual bool write(std::string_view data) = 0;  // false once the client is gone (the handler should cancel)
    virtual bool client_gone() = 0;                 // non-blocking: did the peer close or reset the connection?
    virtual bool started() const = 0;               // respond() or begin_stream() was called
};

using Handler = std::function<void(const HttpRequest&, HttpExchange&)>;
// Turns an HTTP-layer error (404, 405, 413, ...) into a response, so the application picks the body format.
using ErrorFormatter = std::function<HttpResponse(int status, const std::string& message)>;

HttpResponse plain_error(int status, const std::string& message);

class Router {
public:
    Router();
    void add(const std::string& method, const std::string& path, Handler handler);
    void set_error_formatter(ErrorFormatter f) { error_ = std::move(f); }
    HttpResponse error(int status, const std::string& message) const { return error_(status, message); }
    // Runs the handler for (method, path): 404 for an unknown path, 405 (with Allow) for a known path with another
    // method; a handler that throws gets a 500 if it had not started answering.
    void dispatch(const HttpRequest& req, HttpExchange& ex) const;

private:
    std::map<std::string, std::map<std::string, Handler>> routes_;  // path → method → handler
    ErrorFormatter error_;
};

}  // namespace moeinfer::server
