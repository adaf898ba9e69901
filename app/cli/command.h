// archlens-cli sub-commands register themselves here; main.cpp dispatches by name.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace archlens::cli {

// Minimal option parser: positional arguments and --name [value] options.
class Args {
public:
    Args(std::vector<std::string> argv, std::vector<std::string> flags_without_value);
    const std::vector<std::string>& positional() const { return positional_; }
    bool has(const std::string& name) const;
    std::optional<std::string> get(const std::string& name) const;
    std::string get_or(const std::string& name, const std::string& fallback) const;
    // Throws archlens::Error with a clear message when missing or malformed.
    std::string require(const std::string& name) const;
    long long get_int(const std::string& name, long long fallback) const;
    double get_double(const std::string& name, double fallback) const;

private:
    std::vector<std::string> positional_;
    std::vector<std::pair<std::string, std::string>> options_;
};

std::vector<int> parse_id_list(const std::string& text);  // "1,2,3" -> {1,2,3}; throws on junk

struct Command {
    std::string name;
    std::string usage;
    std::function<int(const std::vector<std::string>&)> run;
};

std::vector<Command>& registry();

struct Register {
    explicit Register(Command c) { registry().push_back(std::move(c)); }
};

}  // namespace archlens::cli
