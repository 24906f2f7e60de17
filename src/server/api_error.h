// ApiError: an error a handler answers with, in OpenAI's shape {"error": {"message", "type", "param", "code"}}.
#pragma once
#include <stdexcept>
#include <string>

#include "server/http.h"

namespace moeinfer::server {

struct ApiError : std::runtime_error {
    ApiError(int status, std::string message, std::string param = {}, std::string type = {})
        : std::runtime_error(std::move(message)), status(status), param(std::move(param)), type(std::move(type)) {}
    int status;
    std::string param;  // the request field at fault, when one is
    std::string type;   // empty: derived from the status
};

// "invalid_request_error" for 4xx, "authentication_error" for 401, "server_error" for 5xx, ...
const char* error_type_for(int status);
std::string error_body(int status, const std::string& message, const std::string& param = {},
                       const std::string& type = {});
HttpResponse error_response(const ApiError& e);
HttpResponse error_response(int status, const std::string& message);  // an ErrorFormatter for the Router

}  // namespace moeinfer::server
