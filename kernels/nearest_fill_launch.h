// Host entry points of the CUDA kernels of the nearest-non-class neighbour fill (nearest_fill.cu),
// callable from plain C++ (the torch wrapper csrc/cuda/nearest_fill_cuda.cpp). Each launches on the
// given stream and returns the launch's error code.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/nearest_fill_math.h"

namespace fastadv {

// stacks: int32 scratch of 2 * B * H * W elements on the device.
cudaError_t launch_nearest_fill(const NearestFillArgs& args, int32_t* stacks, cudaStream_t stream);

}  // namespace fastadv
