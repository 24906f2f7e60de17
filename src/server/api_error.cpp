// OpenAI-style error bodies (see api_error.h).
#include "server/api_error.h"

#include "core/json.h"

namespace moeinfer::server {

const char* error_type_for(int status) {
    switch (status) {
        case 401: return "authentication_error";
        case 404: return "not_found_error";
        case 413: return "request_too_large";
        case 503: return "service_unavailable";
        default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

std::string error_body(int status, const std::string& message, const std::string& param, const std::string& type) {
    json::Value e = json::Value::object();
    e.set("message", message);
    e.set("type", type.empty() ? error_type_for(status) : type);
    e.set("param", param.empty() ? json::Value() : json::Value(param));
    e.set("code", int64_t(status));
    json::Value root = json::Value::object();
    root.set("error", std::move(e));
    return root.dump();
}

HttpResponse error_response(const ApiError& e) {
    HttpResponse r;
    r.status = e.status;
    r.body = error_body(e.status, e.what(), e.param, e.type);
    if (e.status == 503) r.headers.emplace_back("Retry-After", "1");
    if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
}

HttpResponse error_response(int status, const std::string& message) { return error_response(ApiError(status, message)); }

}  // namespace moeinfer::server
