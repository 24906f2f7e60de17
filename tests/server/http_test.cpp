// HTTP layer without sockets: request-head parsing, Content-Length, response heads and Router dispatch.
#include <gtest/gtest.h>

#include <stdexcept>

#include "server/http.h"

namespace moeinfer::server {
namespace {

// An exchange that records what a handler answered.
struct FakeExchange : HttpExchange {
    HttpResponse response;
    bool did_start = false;
    std::string streamed;
    void respond(const HttpResponse& r) override {
        response = r;
        did_start = true;
    }
    bool begin_stream(int status, const std::string&, const Headers&) override {
        response.status = status;
        did_start = true;
        return true;
    }
    bool write(std::string_view d) override {
        streamed.append(d);
        return true;
    }
    bool client_gone() override { return false; }
    bool started() const override { return did_start; }
};

TEST(HttpParse, RequestLineHeadersAndQuery) {
    HttpRequest r;
    std::string err;
    ASSERT_EQ(parse_request_head("POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type:  application/json \r\n"
                                 "X-Empty:",
                                 r, err),
              0)
        << err;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/v1/completions");
    EXPECT_EQ(r.query, "x=1");
    ASSERT_NE(r.header("content-type"), nullptr);
    EXPECT_EQ(*r.header("content-type"), "application/json");
    EXPECT_EQ(*r.header("x-empty"), "");
    EXPECT_TRUE(r.keep_alive());
}

TEST(HttpParse, RejectsMalformedHeads) {
    const char* bad[] = {"GET /\r\nHost: a",          "GET  / HTTP/1.1\r\nHost: a", "GET / HTTP/1.1 x\r\nHost: a",
                         "GET x HTTP/1.1\r\nHost: a", "G(T / HTTP/1.1\r\nHost: a",  "GET / FTP/1.1\r\nHost: a",
                         "GET / HTTP/1.1\r\nNoColon", "GET / HTTP/1.1\r\n: v",      "GET / HTTP/1.1\r\nBad Name: v",
                         "GET / HTTP/1.1",            "GET / HTTP/1.1\r\nHost: a\x01"};
    for (const char* h : bad) {
        HttpRequest r;
        std::string err;
        EXPECT_EQ(parse_request_head(h, r, err), 400) << h;
        EXPECT_FALSE(err.empty());
    }
    HttpRequest r;
    std::string err;
    EXPECT_EQ(parse_request_head("GET / HTTP/2.0\r\nHost: a", r, err), 505);
}

TEST(HttpParse, KeepAliveRules) {
    HttpRequest r;
    std::string err;
    ASSERT_EQ(parse_request_head("GET / HTTP/1.0", r, err), 0) << err;  // 1.0 needs no Host
    EXPECT_FALSE(r.keep_alive());
    ASSERT_EQ(parse_request_head("GET / HTTP/1.0\r\nConnection: Keep-Alive", r, err), 0);
    EXPECT_TRUE(r.keep_alive());
    ASSERT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost: h\r\nConnection: close", r, err), 0);
    EXPECT_FALSE(r.keep_alive());
}

TEST(HttpParse, ContentLength) {
    HttpRequest r;
    EXPECT_FALSE(content_length(r).has_value());
    r.headers = {{"content-length", "42"}};
    EXPECT_EQ(content_length(r).value(), 42u);
    for (const char* v : {"", "-1", "4x", "1e3", "99999999999999999999"}) {
        r.headers = {{"content-length", v}};
        EXPECT_THROW(content_length(r), std::invalid_argument) << v;
    }
    r.headers = {{"content-length", "1"}, {"content-length", "2"}};
    EXPECT_THROW(content_length(r), std::invalid_argument);
}

TEST(HttpResponseHead, LengthAndConnection) {
    std::string h = response_head(200, "application/json", {{"X-A", "b"}}, 5, true);
    EXPECT_EQ(h, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: b\r\nContent-Length: 5\r\n"
                 "Connection: keep-alive\r\n\r\n");
    h = response_head(200, "text/event-stream", {}, std::nullopt, false);
    EXPECT_EQ(h.find("Content-Length"), std::string::npos);
    EXPECT_NE(h.find("Connection: close\r\n\r\n"), std::string::npos);
}

TEST(Router, DispatchNotFoundMethodNotAllowedAndThrowingHandler) {
    Router router;
    router.add("GET", "/a", [](const HttpRequest&, HttpExchange& ex) {
        HttpResponse r;
        r.body = "A";
        ex.respond(r);
    });
    router.add("POST", "/a", [](const HttpRequest&, HttpExchange&) { throw std::runtime_error("boom"); });
    router.add("PUT", "/a", [](const HttpRequest&, HttpExchange& ex) {
        ex.begin_stream(200, "text/plain", {});
        throw std::runtime_error("late");
    });
    HttpRequest req;
    req.path = "/a";
    req.method = "GET";
    {
        FakeExchange ex;
        router.dispatch(req, ex);
        EXPECT_EQ(ex.response.status, 200);
        EXPECT_EQ(ex.response.body, "A");
    }
    {
        FakeExchange ex;
        req.method = "DELETE";
        router.dispatch(req, ex);
        EXPECT_EQ(ex.response.status, 405);
        ASSERT_EQ(ex.response.headers.size(), 1u);
        EXPECT_EQ(ex.response.headers[0].second, "GET, POST, PUT");
    }
    {
        FakeExchange ex;
        req.method = "POST";
        router.dispatch(req, ex);
        EXPECT_EQ(ex.response.status, 500);
        EXPECT_NE(ex.response.body.find("boom"), std::string::npos);
    }
    {
        FakeExchange ex;
        req.method = "PUT";
        router.dispatch(req, ex);  // already streaming: nothing more can be sent, and nothing escapes
        EXPECT_EQ(ex.response.status, 200);
    }
    {
        FakeExchange ex;
        req.path = "/nope";
        router.set_error_formatter([](int status, const std::string& m) {
            HttpResponse r;
            r.status = status;
            r.body = "json:" + m;
            return r;
        });
        router.dispatch(req, ex);
        EXPECT_EQ(ex.response.status, 404);
        EXPECT_EQ(ex.response.body.rfind("json:", 0), 0u);
    }
}

}  // namespace
}  // namespace moeinfer::server
