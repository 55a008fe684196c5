// Host entry points of the CUDA kernels, callable from plain C++ (the torch wrappers in
// csrc/cuda/). Each launches on the given stream and returns the launch's error code.
#pragma once

#include <cuda_runtime_api.h>

#include "sign_step.h"

namespace fastadv {

cudaError_t launch_sign_step(const SignStepArgs& args, cudaStream_t stream);

}  // namespace fastadv
