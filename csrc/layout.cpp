#include "csrc/layout.h"

#include <ATen/ExpandUtils.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace fastadv {

MemoryOrder MemoryOrder::of(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.dim() == kMaxDims, what, " must be 4-d [B, C, H, W], got shape ", x.sizes());
  MemoryOrder order;
  for (int d = 0; d < kMaxDims; ++d) order.dim[d] = kMaxDims - 1 - d;
  // Innermost first; among equal strides (size-1 dims) keep the logical order, last dim inner.
  std::stable_sort(order.dim.begin(), order.dim.end(),
                   [&](int64_t a, int64_t b) { return x.stride(a) < x.stride(b); });
  int64_t expected = 1;
  for (int d = 0; d < kMaxDims; ++d) {
    const int64_t size = x.size(order.dim[d]);
    order.shape.size[d] = size;
    TORCH_CHECK(size == 1 || x.numel() == 0 || x.stride(order.dim[d]) == expected, what,
                " must be dense (contiguous or channels_last), got strides ", x.strides());
    expected *= size;
  }
  return order;
}

Strides4 MemoryOrder::broadcast_strides(const at::Tensor& t, at::IntArrayRef x_sizes,
                                        const char* what) const {
  TORCH_CHECK(at::is_expandable_to(t.sizes(), x_sizes), what, " of shape ", t.sizes(),
              " does not broadcast to ", x_sizes);
  const at::Tensor expanded = t.expand(x_sizes);  // a view: copies nothing
  Strides4 s;
  for (int d = 0; d < kMaxDims; ++d) {
    s.stride[d] = x_sizes[dim[d]] == 1 ? 0 : expanded.stride(dim[d]);
  }
  return s;
}

DType to_kernel_dtype(at::ScalarType type, const char* what) {
  switch (type) {
    case at::kHalf: return DType::Float16;
    case at::kBFloat16: return DType::BFloat16;
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    default: TORCH_CHECK(false, what, " must be float16, bfloat16, float32 or float64, got ", type);
  }
}

at::ScalarType compute_scalar_type(at::ScalarType type, const char* what) {
  return to_kernel_dtype(type, what) == DType::Float64 ? at::kDouble : at::kFloat;
}

}  // namespace fastadv
