// One error type for the whole engine: what failed, where (file, tensor, offset), expected vs found.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace archlens {

class Error : public std::runtime_error {
public:
    explicit Error(std::string message) : std::runtime_error(std::move(message)) {}
};

// Builds "FILE: message" so every error names the file it is about.
[[noreturn]] void fail(const std::string& file, const std::string& message);

std::string human_bytes(uint64_t bytes);

}  // namespace archlens
