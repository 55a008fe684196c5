// fastadv::sign_step_ on CPU tensors: the C++ loops (formula: kernels/sign_step_math.h).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "csrc/cpu_clones.h"
#include "csrc/sign_step.h"

namespace fastadv {
namespace {

constexpr int64_t kGrain = 1 << 15;

// A broadcast operand as the CPU loop reads it: absent ones point at their default value with
// zero strides, so the inner loop is the same whichever operands are present.
template <typename T>
struct Operand {
  const T* data;
  Strides4 strides;

  Operand(const void* p, const Strides4& s, const T* fallback)
      : data(p ? static_cast<const T*>(p) : fallback), strides(p ? s : Strides4{}) {}
};

// The loops are functions of their own, kept out of line: inlined into the region OpenMP
// outlines for at::parallel_for, gcc no longer vectorises them (6 ms became 40 ms).
#define FASTADV_LOOP_FN __attribute__((noinline))

// Elements as the loops see them: bfloat16 as its raw bits, converted with integer operations
// (round to nearest even, NaN kept quiet) that gcc vectorises, where c10's conversions and
// member access are not.
template <typename scalar_t>
using elem_t = std::conditional_t<std::is_same_v<scalar_t, c10::BFloat16>, uint16_t, scalar_t>;

template <typename acc_t, typename T>
inline acc_t load(const T* p, int64_t i) {
  return static_cast<acc_t>(p[i]);
}
template <typename acc_t, typename T>
inline void store(T* p, int64_t i, acc_t v) {
  p[i] = static_cast<T>(v);
}
template <>
inline float load<float, uint16_t>(const uint16_t* p, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
template <>
inline void store<float, uint16_t>(uint16_t* p, int64_t i, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  p[i] = static_cast<uint16_t>(v != v ? 0x7fc0u : rounded);
}

// Scalar step and eps, no mask, every sample: a flat loop the compiler vectorises. Without
// kQuantize the quantum is a literal 0, and the rounding leaves the loop.
template <typename T, typename acc_t, bool kQuantize>
inline __attribute__((always_inline)) void flat_loop(T* x, const T* x0, const T* grad,
                                                     int64_t begin, int64_t end, acc_t step,
                                                     acc_t eps, acc_t lo, acc_t hi, acc_t quantum) {
  for (int64_t i = begin; i < end; ++i) {
    store(x, i,
          sign_step_value<acc_t>(load<acc_t>(x, i), load<acc_t>(x0, i), load<acc_t>(grad, i), step,
                                 eps, acc_t(1), lo, hi, kQuantize ? quantum : acc_t(0)));
  }
}

// One row of the broadcast loop nest, its step, eps and mask rows at unit stride.
template <typename T, typename acc_t, bool kQuantize>
inline __attribute__((always_inline)) void row_loop(T* x, const T* x0, const T* grad, int64_t n,
                                                    const acc_t* step, const acc_t* eps,
                                                    const acc_t* mask, acc_t lo, acc_t hi,
                                                    acc_t quantum) {
  for (int64_t k = 0; k < n; ++k) {
    store(x, k,
          sign_step_value<acc_t>(load<acc_t>(x, k), load<acc_t>(x0, k), load<acc_t>(grad, k),
                                 step[k], eps[k], mask[k], lo, hi, kQuantize ? quantum : acc_t(0)));
  }
}

// The float32 and bfloat16 loops are compute-bound at SSE2's width (bfloat16 widens and narrows
// every element; with rounding, float32 takes 1 ns an element on two threads), so they are also
// compiled for AVX2 and AVX-512: each instantiation gets its clones.
template <typename T, bool kQuantize>
FASTADV_WIDE_CLONES void flat_range_wide(T* x, const T* x0, const T* grad, int64_t begin,
                                         int64_t end, float step, float eps, float lo, float hi,
                                         float quantum) {
  flat_loop<T, float, kQuantize>(x, x0, grad, begin, end, step, eps, lo, hi, quantum);
}

template <typename T, bool kQuantize>
FASTADV_WIDE_CLONES void row_wide(T* x, const T* x0, const T* grad, int64_t n, const float* step,
                                  const float* eps, const float* mask, float lo, float hi,
                                  float quantum) {
  row_loop<T, float, kQuantize>(x, x0, grad, n, step, eps, mask, lo, hi, quantum);
}

template <typename T>
constexpr bool kWide = std::is_same_v<T, float> || std::is_same_v<T, uint16_t>;

template <typename T, typename acc_t, bool kQuantize>
FASTADV_LOOP_FN void flat_range(T* x, const T* x0, const T* grad, int64_t begin, int64_t end,
                                acc_t step, acc_t eps, acc_t lo, acc_t hi, acc_t quantum) {
  if constexpr (kWide<T>) {
    flat_range_wide<T, kQuantize>(x, x0, grad, begin, end, step, eps, lo, hi, quantum);
  } else {
    flat_loop<T, acc_t, kQuantize>(x, x0, grad, begin, end, step, eps, lo, hi, quantum);
  }
}

template <typename T, typename acc_t, bool kQuantize>
FASTADV_LOOP_FN void broadcast_row(T* x, const T* x0, const T* grad, int64_t n, const acc_t* step,
                                   const acc_t* eps, const acc_t* mask, acc_t lo, acc_t hi,
                                   acc_t quantum) {
  if constexpr (kWide<T>) {
    row_wide<T, kQuantize>(x, x0, grad, n, step, eps, mask, lo, hi, quantum);
  } else {
    row_loop<T, acc_t, kQuantize>(x, x0, grad, n, step, eps, mask, lo, hi, quantum);
  }
}

// A broadcast operand's rows at unit stride, plane by plane. With unit strides the row loop
// vectorises; strided reads kept it scalar, 6x slower. A row is the operand itself where it has
// unit stride; a row of copies of its one value, filled once a plane, where it is constant over
// the plane (a scalar, a per-sample or per-pixel-but-not-per-channel value in channels_last);
// gathered row by row otherwise. (Filling the constant rows once a row cost more than the update.)
template <typename acc_t>
class UnitRows {
 public:
  UnitRows(const Operand<acc_t>& operand, int64_t n) : op_(operand), buffer_(n) {}

  void start_plane(int64_t offset) {
    base_ = op_.data + offset;
    if (constant()) std::fill(buffer_.begin(), buffer_.end(), *base_);
  }

  const acc_t* row(int64_t k1) {
    const acc_t* p = base_ + k1 * op_.strides.stride[1];
    if (op_.strides.stride[0] == 1) return p;
    if (!constant()) {
      for (size_t k = 0; k < buffer_.size(); ++k) buffer_[k] = p[k * op_.strides.stride[0]];
    }
    return buffer_.data();
  }

 private:
  bool constant() const { return op_.strides.stride[0] == 0 && op_.strides.stride[1] == 0; }

  const Operand<acc_t>& op_;
  std::vector<acc_t> buffer_;
  const acc_t* base_ = nullptr;
};

template <typename scalar_t, bool kQuantize>
struct CpuSignStep {
  using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
  using T = elem_t<scalar_t>;
  const SignStepArgs& a;
  T* x = static_cast<T*>(a.x);
  const T* x0 = static_cast<const T*>(a.x0);
  const T* grad = static_cast<const T*>(a.grad);
  acc_t lo = static_cast<acc_t>(a.lo), hi = static_cast<acc_t>(a.hi);
  acc_t quantum() const { return static_cast<acc_t>(a.quantum); }

  void flat() const {
    const auto step = static_cast<acc_t>(a.step), eps = static_cast<acc_t>(a.eps);
    at::parallel_for(0, a.numel, kGrain, [&](int64_t begin, int64_t end) {
      flat_range<T, acc_t, kQuantize>(x, x0, grad, begin, end, step, eps, lo, hi, quantum());
    });
  }

  // Broadcast operands: a loop nest over planes of the two innermost memory dims (H x W when
  // contiguous, W x C when channels_last), operand offsets set once a plane and once a row.
  void broadcast() const {
    const acc_t default_step = static_cast<acc_t>(a.step), default_eps = static_cast<acc_t>(a.eps);
    const acc_t one = 1, q = quantum();
    const bool all_active = true;
    const Operand<acc_t> step(a.step_map, a.step_strides, &default_step);
    const Operand<acc_t> eps(a.eps_map, a.eps_strides, &default_eps);
    const Operand<acc_t> mask(a.mask, a.mask_strides, &one);
    const Operand<bool> active(a.active, a.active_strides, &all_active);
    const int64_t n0 = a.shape.size[0], n1 = a.shape.size[1];
    const int64_t plane = n0 * n1;
    const int64_t planes = a.numel / plane;
    at::parallel_for(
        0, planes, std::max<int64_t>(1, kGrain / plane), [&](int64_t begin, int64_t end) {
          UnitRows<acc_t> step_rows(step, n0), eps_rows(eps, n0), mask_rows(mask, n0);
          Coord4<int64_t> c;
          c.set(begin * plane, a.shape);
          for (int64_t p = begin; p < end; ++p) {
            if (active.data[c.offset(active.strides)]) {
              step_rows.start_plane(c.offset(step.strides));
              eps_rows.start_plane(c.offset(eps.strides));
              mask_rows.start_plane(c.offset(mask.strides));
              const int64_t i0 = p * plane;
              for (int64_t k1 = 0; k1 < n1; ++k1) {
                const int64_t i = i0 + k1 * n0;
                broadcast_row<T, acc_t, kQuantize>(x + i, x0 + i, grad + i, n0, step_rows.row(k1),
                                                   eps_rows.row(k1), mask_rows.row(k1), lo, hi, q);
              }
            }
            c.k[0] = n0 - 1;  // on to the next plane
            c.k[1] = n1 - 1;
            c.advance(a.shape);
          }
        });
  }
};

template <typename scalar_t>
void sign_step_cpu_typed(const SignStepArgs& a) {
  const bool quantize = a.quantum > 0;
  const bool broadcast = a.has_broadcast_operand();
  if (quantize) {
    const CpuSignStep<scalar_t, true> op{a};
    broadcast ? op.broadcast() : op.flat();
  } else {
    const CpuSignStep<scalar_t, false> op{a};
    broadcast ? op.broadcast() : op.flat();
  }
}

void sign_step_cpu(at::Tensor& x, const at::Tensor& x0, const at::Tensor& grad, double step,
                   const std::optional<at::Tensor>& step_map, double eps,
                   const std::optional<at::Tensor>& eps_map, double lo, double hi,
                   const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& active,
                   std::optional<double> quantum) {
  const SignStepArgs a =
      make_sign_step_args(x, x0, grad, step, step_map, eps, eps_map, lo, hi, mask, active, quantum);
  switch (a.dtype) {
    case DType::Float16: return sign_step_cpu_typed<c10::Half>(a);
    case DType::BFloat16: return sign_step_cpu_typed<c10::BFloat16>(a);
    case DType::Float32: return sign_step_cpu_typed<float>(a);
    case DType::Float64: return sign_step_cpu_typed<double>(a);
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CPU, m) { m.impl("sign_step_", &sign_step_cpu); }

}  // namespace fastadv
