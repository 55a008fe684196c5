// Host entry points of the CUDA kernels of the colour ops (color.cu), callable from plain C++ (the
// torch wrapper csrc/cuda/color_cuda.cpp). Each launches on the given stream and returns the
// launch's error code.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/color_math.h"

namespace fastadv {

cudaError_t launch_rgb_to_lab(const ColorPixelsArgs& args, cudaStream_t stream);
cudaError_t launch_delta_e2000(const ColorPixelsArgs& args, cudaStream_t stream);
cudaError_t launch_color_variance(const ColorVarianceArgs& args, cudaStream_t stream);

}  // namespace fastadv
