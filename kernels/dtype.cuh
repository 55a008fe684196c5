// Element-type plumbing for the CUDA kernels: the compute type of each storage type, the
// conversions, and aligned vectors for 16-byte loads and stores.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.h"

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

template <typename T>
__device__ __forceinline__ acc_type<T> to_acc(T v) {
  return static_cast<acc_type<T>>(v);
}
template <typename T>
__device__ __forceinline__ T from_acc(acc_type<T> v) {
  return static_cast<T>(v);
}

template <typename T, int N>
struct alignas(sizeof(T) * N) AlignedVec {
  T v[N];
};

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
