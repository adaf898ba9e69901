// archlens-cli: the engine, headless. Each sub-command lives in its own cmd_*.cpp file.
#include <cctype>
#include <cstdio>
#include <exception>
#include <string>

#include "app/cli/command.h"
#include "engine/core/error.h"

namespace archlens::cli {

std::vector<Command>& registry() {
    static std::vector<Command> commands;
    return commands;
}

Args::Args(std::vector<std::string> argv, std::vector<std::string> flags) {
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if ((a.size() > 2 && a.rfind("--", 0) == 0) || (a.size() == 2 && a[0] == '-' && std::isalpha((unsigned char)a[1]))) {
            std::string name = a.substr(a[1] == '-' ? 2 : 1), value;
            auto eq = name.find('=');
            bool is_flag = false;
            for (auto& f : flags) is_flag |= (f == name);
            if (eq != std::string::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
            } else if (!is_flag) {
                if (i + 1 >= argv.size()) throw Error("option --" + name + " needs a value");
                value = argv[++i];
            }
            options_.emplace_back(name, value);
        } else {
            positional_.push_back(a);
        }
    }
}

bool Args::has(const std::string& name) const {
    for (auto& o : options_)
        if (o.first == name) return true;
    return false;
}

std::optional<std::string> Args::get(const std::string& name) const {
    for (auto it = options_.rbegin(); it != options_.rend(); ++it)
        if (it->first == name) return it->second;
    return std::nullopt;
}

std::string Args::get_or(const std::string& name, const std::string& fallback) const {
    auto v = get(name);
    return v ? *v : fallback;
}

std::string Args::require(const std::string& name) const {
    auto v = get(name);
    if (!v) throw Error("missing required option --" + name);
    return *v;
}

long long Args::get_int(const std::string& name, long long fallback) const {
    auto v = get(name);
    if (!v) return fallback;
    try {
        size_t pos = 0;
        long long x = std::stoll(*v, &pos);
        if (pos != v->size()) throw 0;
        return x;
    } catch (...) {
        throw Error("option --" + name + ": expected an integer, got '" + *v + "'");
    }
}

double Args::get_double(const std::string& name, double fallback) const {
    auto v = get(name);
    if (!v) return fallback;
    try {
        size_t pos = 0;
        double x = std::stod(*v, &pos);
        if (pos != v->size()) throw 0;
        return x;
    } catch (...) {
        throw Error("option --" + name + ": expected a number, got '" + *v + "'");
    }
}

std::vector<int> parse_id_list(const std::string& text) {
    std::vector<int> ids;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find_first_of(", ", i);
        if (j == std::string::npos) j = text.size();
        std::string part = text.substr(i, j - i);
        if (!part.empty()) {
            try {
                size_t pos = 0;
                long v = std::stol(part, &pos);
                if (pos != part.size() || v < 0 || v > INT32_MAX) throw 0;
                ids.push_back(int(v));
            } catch (...) {
                throw Error("token list: '" + part + "' is not a non-negative integer");
            }
        }
        i = j + 1;
    }
    return ids;
}

}  // namespace archlens::cli

static void usage() {
    std::fprintf(stderr, "usage: archlens-cli COMMAND ...\n\ncommands:\n");
    for (auto& c : archlens::cli::registry()) std::fprintf(stderr, "  %s\n", c.usage.c_str());
}

int main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        usage();
        return argc < 2 ? 2 : 0;
    }
    std::string name = argv[1];
    std::vector<std::string> args(argv + 2, argv + argc);
    for (auto& c : archlens::cli::registry()) {
        if (c.name != name) continue;
        try {
            return c.run(args);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "archlens-cli %s: error: %s\n", name.c_str(), e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "archlens-cli: unknown command '%s'\n", name.c_str());
    usage();
    return 2;
}
