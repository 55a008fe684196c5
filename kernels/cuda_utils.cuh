// Shared by the CUDA kernels: the compute type of each storage type and the conversions, aligned
// vectors for 16-byte loads and stores, and grid sizes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/common.h"

namespace fastadv {

template <typename T>
struct AccType {
  using type = float;  // half types and float32 compute in float32
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using acc_type = typename AccType<T>::type;

// The half types through CUDA's intrinsics: torch's BuildExtension compiles with
// -D__CUDA_NO_HALF_CONVERSIONS__ and -D__CUDA_NO_BFLOAT16_CONVERSIONS__, which remove their
// implicit conversions (and so static_cast). Narrowing rounds to nearest even, as torch does.
template <typename T>
__device__ __forceinline__ acc_type<T> to_acc(T v) {
  return static_cast<acc_type<T>>(v);
}
template <>
__device__ __forceinline__ float to_acc<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_acc(acc_type<T> v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T, int N>
struct alignas(sizeof(T) * N) AlignedVec {
  T v[N];
};

// Blocks of `block` threads for `threads` threads, at most `max_blocks` (a grid-stride loop then
// covers the rest; the default is the limit of gridDim.x).
inline int64_t blocks_for(int64_t threads, int block, int64_t max_blocks = 2147483647) {
  const int64_t blocks = (threads + block - 1) / block;
  return blocks < max_blocks ? blocks : max_blocks;
}

// Calls f with a value of the storage type that `dtype` names.
template <typename F>
cudaError_t dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float16: return f(__half{});
    case DType::BFloat16: return f(__nv_bfloat16{});
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace fastadv
