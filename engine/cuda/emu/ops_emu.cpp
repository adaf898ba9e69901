// The CUDA backend's single operations compiled as C++ against the host emulation (see cuda_emu.h).
#include "engine/cuda/cuda_ops.cu"
