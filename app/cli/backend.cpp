#include "app/cli/backend.h"

#include <cstdio>

namespace archlens::cli {

Runner::Runner(const Args& a, const Model& m, const SessionOptions& o)
    : BackendSession(m, o, parse_backend(a.get_or("backend", "cpu"))) {
    if (!note().empty()) std::fprintf(stderr, "archlens-cli: running on the CPU: %s\n", note().c_str());
}

}  // namespace archlens::cli
