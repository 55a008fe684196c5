// Host side of the colour ops, shared by the CPU and CUDA wrappers.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/color_math.h"

namespace fastadv {

// Operand checks and packing of the colour ops, shared by the CPU and CUDA wrappers. The
// compiled kernels compute in float or double: half inputs are converted to float32 here and
// results converted back by the caller. The tensors must outlive the kernels (raw pointers).

// rgb_to_lab / delta_e2000 operand: [M, 3, P] in the compute type, any strides (a view where the
// type is already the compute type).
at::Tensor color_pixels_operand(const at::Tensor& t, const char* what);

// in2 (delta_e2000's second operand) may be null; out is [M, 3, P] (rgb_to_lab) or [M, P].
ColorPixelsArgs make_color_pixels_args(const at::Tensor& in1, const at::Tensor* in2,
                                       at::Tensor& out, double kl, double kc, double kh);

// One color_variance call: the checked operand ([B, 3, H, W], compute type, contiguous), the
// [B, 4, H, W] Lab scratch buffer and the raw [B, 1, H, W] map, and the kernels' view of them.
struct ColorVarianceCall {
  at::Tensor rgb, lab, out;
  ColorVarianceArgs args;

  ColorVarianceCall(const at::Tensor& input, int64_t kernel_size, double sigma);
  // The map as returned: normalised by each image's maximum when asked (an all-zero image
  // stays zero), in `dtype`. An empty map is returned as it is.
  at::Tensor result(bool normalize, at::ScalarType dtype) const;
};

}  // namespace fastadv
