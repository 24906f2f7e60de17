// HTTP/1.1 request-head parsing, response serialization and routing (see http.h).
#include "server/http.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>

namespace moeinfer::server {
namespace {

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 9110 token characters (method and header names).
bool is_tchar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
        if (k == lower_name) return &v;
    return nullptr;
}

bool HttpRequest::keep_alive() const {
    const std::string* c = header("connection");
    const std::string v = c ? lower(*c) : std::string();
    if (version == "HTTP/1.0") return v.find("keep-alive") != std::string::npos;
    return v.find("close") == std::string::npos;
}

const char* status_text(int status) {
    switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

int parse_request_head(std::string_view head, HttpRequest& out, std::string& error) {
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        error = "malformed request line";
        return 400;
    }
    out.method = std::string(line.substr(0, sp1));
    out.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    out.version = std::string(line.substr(sp2 + 1));
    if (out.method.empty() || !std::all_of(out.method.begin(), out.method.end(), is_tchar)) {
        error = "malformed method";
        return 400;
    }
    if (out.target.empty() || out.target[0] != '/') {
        error = "request target must be an absolute path";
        return 400;
    }
    for (char c : out.target)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
            error = "control character in request target";
            return 400;
        }
    if (out.version.rfind("HTTP/", 0) != 0) {
        error = "malformed HTTP version";
        return 400;
    }
    if (out.version != "HTTP/1.1" && out.version != "HTTP/1.0") {
        error = "unsupported HTTP version " + out.version;
        return 505;
    }
    size_t q = out.target.find('?');
    out.path = out.target.substr(0, q);
    out.query = q == std::string::npos ? std::string() : out.target.substr(q + 1);
    out.headers.clear();
    while (!rest.empty()) {
        eol = rest.find("\r\n");
        std::string_view h = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
        size_t colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0 ||
            !std::all_of(h.begin(), h.begin() + colon, is_tchar)) {
            error = "malformed header line";
            return 400;
        }
        std::string_view value = trim(h.substr(colon + 1));
        for (char c : value)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
                error = "control character in header value";
                return 400;
            }
        out.headers.emplace_back(lower(h.substr(0, colon)), std::string(value));
    }
    if (out.version == "HTTP/1.1" && !out.header("host")) {
        error = "missing Host header";
        return 400;
    }
    return 0;
}

std::optional<size_t> content_length(const HttpRequest& req) {
    std::optional<size_t> len;
    for (const auto& [k, v] : req.headers) {
        if (k != "content-length") continue;
        if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
            throw std::invalid_argument("malformed Content-Length");
        size_t n = std::stoull(v);
        if (len && *len != n) throw std::invalid_argument("conflicting Content-Length headers");
        len = n;
    }
    return len;
}

std::string response_head(int status, const std::string& content_type, const Headers& headers,
                          std::optional<size_t> length, bool keep_alive) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) + "\r\n";
    if (!content_type.empty()) h += "Content-Type: " + content_type + "\r\n";
    for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
    if (length) h += "Content-Length: " + std::to_string(*length) + "\r\n";
    h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    h += "\r\n";
    return h;
}

HttpResponse plain_error(int status, const std::string& message) {
    HttpResponse r;
    r.status = status;
    r.content_type = "text/plain; charset=utf-8";
    r.body = message + "\n";
    return r;
}

Router::Router() : error_(plain_error) {}

void Router::add(const std::string& method, const std::string& path, Handler handler) {
    routes_[path][method] = std::move(handler);
}

void Router::dispatch(const HttpRequest& req, HttpExchange& ex) const {
    auto p = routes_.find(req.path);
    if (p == routes_.end()) {
        ex.respond(error(404, "no route for " + req.method + " " + req.path));
        return;
    }
    auto m = p->second.find(req.method);
    if (m == p->second.end()) {
        std::string allow;
        for (const auto& [name, h] : p->second) allow += (allow.empty() ? "" : ", ") + name;
        HttpResponse r = error(405, "method " + req.method + " not allowed for " + req.path);
        r.headers.emplace_back("Allow", allow);
        ex.respond(r);
        return;
    }
    try {
        m->second(req, ex);
    } catch (const std::exception& e) {
        if (!ex.started()) ex.respond(error(500, std::string("internal error: ") + e.what()));
    }
}

}  // namespace moeinfer::server
