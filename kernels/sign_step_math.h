// Fused sign-step-clip update: the inner step of FGSM / I-FGSM / PGD and the box projection of
// the colour-variance attack. The formula lives here once; the CPU loop (csrc/) and the CUDA
// kernel (sign_step.cu) both call sign_step_value, and fastadv/triton/sign_step.py mirrors it.
//
//   delta = x + step * sign(grad) * m - x0        sign(0) = sign(NaN) = 0
//   delta = clamp(delta, -eps, eps)
//   delta = clamp(rint(delta / quantum) * quantum, -eps, eps)      only when quantum > 0
//   x     = clamp(x0 + delta, lo, hi)
#pragma once

#include "kernels/common.h"

namespace fastadv {

template <typename acc_t>
FASTADV_HD acc_t sign_or_zero(acc_t g) {
  // Comparisons with NaN are false, so a NaN gradient gives 0 and leaves the pixel where it is.
  // Arithmetic rather than branches: gradient signs are random, branches would mispredict.
  return static_cast<acc_t>(g > acc_t(0)) - static_cast<acc_t>(g < acc_t(0));
}

template <typename acc_t>
FASTADV_HD acc_t sign_step_value(acc_t x, acc_t x0, acc_t grad, acc_t step, acc_t eps, acc_t m,
                                 acc_t lo, acc_t hi, acc_t quantum) {
  acc_t delta = x + step * sign_or_zero(grad) * m - x0;
  delta = clamp(delta, -eps, eps);
  // A select rather than a branch, so that CPU loops vectorise with a run-time quantum; with
  // quantum a literal 0 the compiler drops the rounding altogether.
  const acc_t rounded = clamp(round_half_even(delta / quantum) * quantum, -eps, eps);
  delta = quantum > acc_t(0) ? rounded : delta;
  return clamp(x0 + delta, lo, hi);
}

// Everything one launch needs. x, x0 and grad share one dense layout (`shape`, in memory order);
// the optional maps are read through broadcast strides in that order and hold acc_t values
// (float for the half types and float32, double for float64); `active` holds one bool a sample.
struct SignStepArgs {
  void* x;
  const void* x0;
  const void* grad;
  DType dtype;
  int64_t numel;
  Shape4 shape;
  double step, eps, lo, hi, quantum;  // quantum <= 0: no rounding
  const void* step_map;               // null: the scalar `step`
  Strides4 step_strides;
  const void* eps_map;  // null: the scalar `eps`
  Strides4 eps_strides;
  const void* mask;  // null: m = 1
  Strides4 mask_strides;
  const bool* active;  // null: every sample
  Strides4 active_strides;

  FASTADV_HD bool has_broadcast_operand() const {
    return step_map != nullptr || eps_map != nullptr || mask != nullptr || active != nullptr;
  }
};

// Whether a launch of `grid_threads` threads over `numel` elements, `vec` a thread and a step,
// forms only indices that 32-bit arithmetic holds (sign_step.cu). Not only numel counts: a
// thread's grid-stride loop index goes past the last vector by up to the grid's size before its
// test fails, and the tail index (numel / vec) * vec + thread reaches numel - 1 + grid_threads;
// `broadcast_reach` is the largest offset into a broadcast operand.
FASTADV_HD bool fits_int32_indexing(int64_t numel, int vec, int64_t grid_threads,
                                    int64_t broadcast_reach) {
  const int64_t vectors = numel / vec;
  const int64_t loop_index = vectors - 1 + grid_threads;
  const int64_t tail_index = vectors * vec + grid_threads - 1;
  const int64_t largest = loop_index > tail_index ? loop_index : tail_index;
  return largest <= 2147483647 && broadcast_reach <= 2147483647;
}

}  // namespace fastadv
