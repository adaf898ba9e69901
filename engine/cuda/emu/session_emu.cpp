// The CUDA backend's forward pass compiled as C++ against the host emulation (see cuda_emu.h).
#include "engine/cuda/cuda_session.cu"
