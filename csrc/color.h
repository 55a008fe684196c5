#pragma once

#include <ATen/core/Tensor.h>

#include "../kernels/color.h"

namespace fastadv {

// Operand checks and packing of the colour ops, shared by the CPU and CUDA wrappers. The
// compiled kernels compute in float or double: half inputs are converted to float32 here and
// results converted back by the caller. The tensors must outlive the kernels (raw pointers).

// rgb_to_lab / delta_e2000 operand: [M, 3, P], as the compute type, contiguous.
at::Tensor color_pixels_operand(const at::Tensor& t, const char* what);

// color_variance operand: [B, 3, H, W], as the compute type, contiguous; checks the parameters.
at::Tensor color_variance_operand(const at::Tensor& rgb, int64_t kernel_size, double sigma);

ColorPixelsArgs make_color_pixels_args(const at::Tensor& in1, const at::Tensor* in2,
                                       at::Tensor& out, double kl, double kc, double kh);

ColorVarianceArgs make_color_variance_args(const at::Tensor& rgb, at::Tensor& lab, at::Tensor& out,
                                           int64_t kernel_size, double sigma);

// Divides each image's map [B, 1, H, W] by its maximum; an all-zero image stays zero.
at::Tensor normalize_by_max(const at::Tensor& map);

}  // namespace fastadv
