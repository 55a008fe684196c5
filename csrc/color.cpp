// fastadv::rgb_to_lab, delta_e2000 and color_variance: the schemas, and the operand checks and
// packing of every device's kernels.
#include "csrc/color.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <torch/library.h>

#include "csrc/layout.h"

namespace fastadv {

TORCH_LIBRARY_FRAGMENT(fastadv, m) {
  m.def("rgb_to_lab(Tensor rgb) -> Tensor");
  m.def("delta_e2000(Tensor lab1, Tensor lab2, float kl, float kc, float kh) -> Tensor");
  m.def("color_variance(Tensor rgb, int kernel_size, float sigma, bool normalize) -> Tensor");
}

at::Tensor color_pixels_operand(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.dim() == 3 && t.size(1) == 3, what, " must be [M, 3, P], got shape ", t.sizes());
  return t.to(compute_scalar_type(t.scalar_type(), what));
}

namespace {

PixelStrides pixel_strides(const at::Tensor& t) {
  if (t.dim() == 2) return {t.stride(0), 0, t.stride(1)};
  return {t.stride(0), t.stride(1), t.stride(2)};
}

}  // namespace

ColorPixelsArgs make_color_pixels_args(const at::Tensor& in1, const at::Tensor* in2,
                                       at::Tensor& out, double kl, double kc, double kh) {
  if (in2 != nullptr) {
    TORCH_CHECK(in2->sizes() == in1.sizes(), "lab2 has shape ", in2->sizes(), " but lab1 has ",
                in1.sizes());
    TORCH_CHECK(in2->device() == in1.device(), "lab2 is on ", in2->device(), " but lab1 is on ",
                in1.device());
    TORCH_CHECK(kl > 0 && kc > 0 && kh > 0, "kL, kC and kH must be > 0, got ", kl, ", ", kc, ", ",
                kh);
  }
  ColorPixelsArgs a{};
  a.in1 = in1.data_ptr();
  a.in1_strides = pixel_strides(in1);
  if (in2 != nullptr) {
    a.in2 = in2->data_ptr();
    a.in2_strides = pixel_strides(*in2);
  }
  a.out = out.data_ptr();
  a.out_strides = pixel_strides(out);
  a.is_double = in1.scalar_type() == at::kDouble;
  a.outer = in1.size(0);
  a.inner = in1.size(2);
  a.kl = kl;
  a.kc = kc;
  a.kh = kh;
  return a;
}

ColorVarianceCall::ColorVarianceCall(const at::Tensor& input, int64_t kernel_size, double sigma) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == 3, "rgb must be [B, 3, H, W], got shape ",
              input.sizes());
  TORCH_CHECK(kernel_size >= 3 && kernel_size % 2 == 1, "kernel_size must be odd and >= 3, got ",
              kernel_size);
  TORCH_CHECK(sigma > 0, "sigma must be > 0, got ", sigma);
  rgb = input.to(compute_scalar_type(input.scalar_type(), "rgb")).contiguous();
  lab = at::empty({rgb.size(0), 4, rgb.size(2), rgb.size(3)}, rgb.options());
  out = at::empty({rgb.size(0), 1, rgb.size(2), rgb.size(3)}, rgb.options());
  args = ColorVarianceArgs{};
  args.rgb = rgb.data_ptr();
  args.lab = lab.data_ptr();
  args.out = out.data_ptr();
  args.is_double = rgb.scalar_type() == at::kDouble;
  args.batch = rgb.size(0);
  args.height = rgb.size(2);
  args.width = rgb.size(3);
  args.radius = static_cast<int>(kernel_size / 2);
  args.sigma = sigma;
}

at::Tensor ColorVarianceCall::result(bool normalize, at::ScalarType dtype) const {
  if (!normalize || out.numel() == 0) return out.to(dtype);
  const at::Tensor peak = out.amax({1, 2, 3}, /*keepdim=*/true);
  return at::where(peak > 0, out / peak, at::zeros_like(out)).to(dtype);
}

}  // namespace fastadv
