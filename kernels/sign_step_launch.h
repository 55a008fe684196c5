// Host entry points of the CUDA kernels of the fused sign-step-clip update (sign_step.cu), callable
// from plain C++ (the torch wrapper csrc/cuda/sign_step_cuda.cpp). Each launches on the given
// stream and returns the launch's error code.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/sign_step_math.h"

namespace fastadv {

cudaError_t launch_sign_step(const SignStepArgs& args, cudaStream_t stream);

}  // namespace fastadv
