// MOE_CHECK: internal invariants (programming errors), thrown as std::logic_error with file:line.
// User input is validated with specific messages elsewhere; never with this macro alone.
#pragma once
#include <stdexcept>
#include <string>

#define MOE_CHECK(cond, msg)                                                                              \
    do {                                                                                                  \
        if (!(cond))                                                                                      \
            throw std::logic_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +               \
                                   ": internal check failed: " #cond ": " + std::string(msg));           \
    } while (0)
