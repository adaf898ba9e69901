// Will a model fit? Weights + KV cache + working buffers against the memory this machine has free,
// classified green / yellow / red like the memory calculators people already use (UX.md).
#pragma once
#include <QColor>
#include <QString>
#include <optional>

#include "engine/model/spec.h"

enum class MemoryFit { Fits, Tight, TooLarge };

// The KV cache the app's sessions keep: f32 (exact: what the CLI and the conformance fixtures
// use) whenever the model fits with it; f16 for standard attention (half the memory, as llama.cpp
// and Ollama keep it by default; MLA's latent cache stays f32) when only that lets the chosen
// context fit. The status bar and the KV view say which.

struct MemoryEstimate {
    quint64 weights = 0;  // bytes of the weight tensors (mapped from the file, as stored)
    quint64 kv = 0;       // KV cache at the full chosen context (f32, or f16 when kvF16)
    bool kvF16 = false;   // the estimate is for an f16 cache (standard attention; MLA stays f32)
    quint64 buffers = 0;  // activations, logits and runtime overhead
    quint64 available = 0;
    MemoryFit fit = MemoryFit::Fits;

    quint64 total() const { return weights + kv + buffers; }
    QString summary()
        const;  // "needs 4.2 GB of 15.1 GB free (weights 3.9 GB + KV 256 MB + buffers 80 MB)"
    QString fitLabel() const;  // "fits", "tight", "too large"
};

// MemAvailable from /proc/meminfo (the kernel's own estimate of what can be used without
// swapping, page cache included); 0 when unknown.
quint64 systemAvailableMemory();

// The budget the app checks against: an injected value (tests, --memory-budget) or the system's.
quint64 memoryBudget();
void setMemoryBudgetOverride(std::optional<quint64> bytes);

// With an f32 KV cache, or an f16 one when kvF16.
MemoryEstimate estimateMemory(const archlens::ModelSpec& spec, quint64 weightBytes, qint64 nCtx,
                              quint64 availableBytes, bool kvF16 = false);
// What the app runs: the f32 estimate, unless that is too large and the f16 cache fits.
MemoryEstimate chooseKvCache(const archlens::ModelSpec& spec, quint64 weightBytes, qint64 nCtx,
                             quint64 availableBytes);

// Bytes of the weight files of a model path before loading it: the GGUF file, or the
// *.safetensors files of an HF folder.
quint64 modelBytesOnDisk(const QString& path);

// The context the app opens a model with: its trained length, capped so the KV cache of a long
// context model does not dominate memory (a setting can raise it).
qint64 defaultContext(const archlens::ModelSpec& spec, qint64 cap = 4096);

QColor fitColor(MemoryFit fit);
QString formatBytes(quint64 bytes);
