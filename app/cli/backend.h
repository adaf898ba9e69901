// The backend a CLI command runs on: --backend cpu (the default) | cuda | auto (engine/backend.h).
//   cuda: the CUDA backend or an error saying why not (no CUDA in this build, no device, a model
//         feature or weight type it does not run yet, not enough device memory);
//   auto: CUDA when it can take the model, else the CPU, with the reason on stderr.
// The CLI's default stays the CPU: its numbers (logits, bench) should not change with the machine
// unless asked. The app chooses automatically.
#pragma once
#include "app/cli/command.h"
#include "engine/backend.h"

namespace archlens::cli {

class Runner : public BackendSession {
public:
    Runner(const Args& a, const Model& m, const SessionOptions& o);
};

}  // namespace archlens::cli
