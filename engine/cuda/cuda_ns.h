// The CUDA backend's namespace: archlens::cuda, or archlens::cuda_emu for the same sources built
// against the host emulation (engine/cuda/emu), so that both can live in one program.
#pragma once
#ifdef ARCHLENS_CUDA_EMU
#define ARCHLENS_CUDA_NS cuda_emu
#else
#define ARCHLENS_CUDA_NS cuda
#endif
