// Host entry points of the CUDA kernels, callable from plain C++ (the torch wrappers in
// csrc/cuda/). Each launches on the given stream and returns the launch's error code.
#pragma once

#include <cuda_runtime_api.h>

#include "color.h"
#include "nearest_fill.h"
#include "sign_step.h"

namespace fastadv {

cudaError_t launch_sign_step(const SignStepArgs& args, cudaStream_t stream);
cudaError_t launch_rgb_to_lab(const ColorPixelsArgs& args, cudaStream_t stream);
cudaError_t launch_delta_e2000(const ColorPixelsArgs& args, cudaStream_t stream);
cudaError_t launch_color_variance(const ColorVarianceArgs& args, cudaStream_t stream);

// stacks: int32 scratch of 2 * B * H * W elements on the device.
cudaError_t launch_nearest_fill(const NearestFillArgs& args, int32_t* stacks, cudaStream_t stream);

}  // namespace fastadv
