// Host helpers shared by every op's CPU and CUDA wrappers: the float dtypes the kernels take and
// the type they compute in, and a dense 4-d tensor described in memory order for the kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>

#include "kernels/common.h"

namespace fastadv {

// The dims of `x` from innermost to outermost in memory. `x` must be non-overlapping and dense
// (contiguous, channels_last, or any permutation of them); the check names `what` on failure.
struct MemoryOrder {
  std::array<int64_t, kMaxDims> dim;  // dim[0] is the innermost logical dim
  Shape4 shape;                       // sizes in that order

  static MemoryOrder of(const at::Tensor& x, const char* what);

  // Strides of `t`, broadcast to x's sizes, in x's memory order (0 where `t` broadcasts).
  Strides4 broadcast_strides(const at::Tensor& t, at::IntArrayRef x_sizes, const char* what) const;
};

// The kernels' element type of a float16, bfloat16, float32 or float64 tensor; anything else
// fails, naming `what`.
DType to_kernel_dtype(at::ScalarType type, const char* what);

// The type a kernel computes in for a tensor of `type` (checked as above): half types and float32
// compute in float32, float64 in float64.
at::ScalarType compute_scalar_type(at::ScalarType type, const char* what);

}  // namespace fastadv
