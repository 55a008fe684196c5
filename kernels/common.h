// Shared by the CUDA kernels (nvcc) and the CPU kernels (host compiler): no torch headers here.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FASTADV_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Forced: the CPU loops vectorise only once the math is inlined into them.
#define FASTADV_HD inline __attribute__((always_inline))
#else
#define FASTADV_HD inline
#endif

namespace fastadv {

// Element types the kernels are instantiated for; half types compute in float32.
enum class DType : int { Float16 = 0, BFloat16 = 1, Float32 = 2, Float64 = 3 };

// Calls f with a value of the type the kernels compute in: double, or float (for float32 and the
// half types, which the host wrappers convert).
template <typename F>
auto dispatch_compute(bool is_double, F&& f) {
  return is_double ? f(double{}) : f(float{});
}

// Two plain selects (not nested) so that host compilers turn them into min/max instructions.
template <typename T>
FASTADV_HD T clamp(T v, T lo, T hi) {
  const T above = v < lo ? lo : v;
  return above > hi ? hi : above;
}

// Round half to even (the default rounding mode). On the GPU rint is one instruction; on the host
// without SSE4.1 it is a libm call that blocks vectorisation, so there |v| is rounded by adding
// and subtracting 2^23 (2^52): the sum's spacing is 1, so the FPU rounds it half to even; larger
// values are integers already.
template <typename T>
FASTADV_HD T round_half_even_by_magic(T v, T two_to_mantissa) {
  const T a = v < T(0) ? -v : v;
  const T r = a < two_to_mantissa ? (a + two_to_mantissa) - two_to_mantissa : a;
  return v < T(0) ? -r : r;
}

FASTADV_HD float round_half_even(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  return round_half_even_by_magic(v, 8388608.0f);
#endif
}

FASTADV_HD double round_half_even(double v) {
#if defined(__CUDA_ARCH__)
  return rint(v);
#else
  return round_half_even_by_magic(v, 4503599627370496.0);
#endif
}

// A 4-d tensor of the kernels' world, described in *memory order*: dim 0 is the innermost
// (stride-1) dimension of the dense iteration tensor. Broadcast operands carry their own
// strides in that same order (0 where they broadcast).
constexpr int kMaxDims = 4;

struct Shape4 {
  int64_t size[kMaxDims];
};

struct Strides4 {
  int64_t stride[kMaxDims];
};

// Coordinates of a linear (memory-order) index, advanced one element at a time so that a loop
// over consecutive elements pays for the divisions once.
template <typename index_t>
struct Coord4 {
  index_t k[kMaxDims];

  FASTADV_HD void set(index_t linear, const Shape4& shape) {
    for (int d = 0; d < kMaxDims; ++d) {
      const index_t n = static_cast<index_t>(shape.size[d]);
      k[d] = linear % n;
      linear /= n;
    }
  }

  FASTADV_HD void advance(const Shape4& shape) {
    for (int d = 0; d < kMaxDims; ++d) {
      if (++k[d] < static_cast<index_t>(shape.size[d])) return;
      k[d] = 0;
    }
  }

  FASTADV_HD index_t offset(const Strides4& s) const {
    index_t off = 0;
    for (int d = 0; d < kMaxDims; ++d) off += k[d] * static_cast<index_t>(s.stride[d]);
    return off;
  }
};

}  // namespace fastadv
