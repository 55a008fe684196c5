// fastadv::rgb_to_lab, delta_e2000 and color_variance on CUDA tensors: checks and packs the
// operands (csrc/color.cpp), launches kernels/color.cu.
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "csrc/color.h"
#include "kernels/color_launch.h"

namespace fastadv {
namespace {

at::Tensor rgb_to_lab_cuda(const at::Tensor& rgb) {
  const at::Tensor x = color_pixels_operand(rgb, "rgb");
  at::Tensor out = at::empty_like(x);
  const ColorPixelsArgs a = make_color_pixels_args(x, nullptr, out, 1, 1, 1);
  const c10::cuda::CUDAGuard guard(x.device());
  C10_CUDA_CHECK(launch_rgb_to_lab(a, c10::cuda::getCurrentCUDAStream()));
  return out.to(rgb.scalar_type());
}

at::Tensor delta_e2000_cuda(const at::Tensor& lab1, const at::Tensor& lab2, double kl, double kc,
                            double kh) {
  const at::Tensor x = color_pixels_operand(lab1, "lab1");
  const at::Tensor y = color_pixels_operand(lab2, "lab2").to(x.scalar_type());
  at::Tensor out = at::empty({x.size(0), x.size(2)}, x.options());
  const ColorPixelsArgs a = make_color_pixels_args(x, &y, out, kl, kc, kh);
  const c10::cuda::CUDAGuard guard(x.device());
  C10_CUDA_CHECK(launch_delta_e2000(a, c10::cuda::getCurrentCUDAStream()));
  return out.to(lab1.scalar_type());
}

at::Tensor color_variance_cuda(const at::Tensor& rgb, int64_t kernel_size, double sigma,
                               bool normalize) {
  const c10::cuda::CUDAGuard guard(rgb.device());
  const ColorVarianceCall call(rgb, kernel_size, sigma);
  C10_CUDA_CHECK(launch_color_variance(call.args, c10::cuda::getCurrentCUDAStream()));
  return call.result(normalize, rgb.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CUDA, m) {
  m.impl("rgb_to_lab", &rgb_to_lab_cuda);
  m.impl("delta_e2000", &delta_e2000_cuda);
  m.impl("color_variance", &color_variance_cuda);
}

}  // namespace fastadv
