// CUDA kernel of the fused sign-step-clip update (formula: sign_step_math.h).
//
// Memory-bound: one read of x, x0 and grad, one write of x. Each thread moves 16-byte vectors of
// the three dense operands; broadcast operands (step/eps maps, mask, active) are read through
// their strides at coordinates that are advanced element by element, so the divisions that turn
// a linear index into coordinates are paid once a vector.
#include <algorithm>

#include "kernels/cuda_utils.cuh"
#include "kernels/sign_step_launch.h"

namespace fastadv {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20;  // the grid-stride loop covers the rest

template <typename scalar_t, typename index_t, bool kBroadcast>
struct SignStepElement {
  using acc_t = acc_type<scalar_t>;
  const SignStepArgs& a;

  __device__ __forceinline__ void operator()(scalar_t& x, scalar_t x0, scalar_t grad,
                                             Coord4<index_t>& c) const {
    acc_t step = static_cast<acc_t>(a.step);
    acc_t eps = static_cast<acc_t>(a.eps);
    acc_t m = acc_t(1);
    if constexpr (kBroadcast) {
      const bool on = a.active == nullptr || a.active[c.offset(a.active_strides)];
      if (a.step_map) step = static_cast<const acc_t*>(a.step_map)[c.offset(a.step_strides)];
      if (a.eps_map) eps = static_cast<const acc_t*>(a.eps_map)[c.offset(a.eps_strides)];
      if (a.mask) m = static_cast<const acc_t*>(a.mask)[c.offset(a.mask_strides)];
      c.advance(a.shape);
      if (!on) return;
    }
    x = from_acc<scalar_t>(sign_step_value<acc_t>(
        to_acc(x), to_acc(x0), to_acc(grad), step, eps, m, static_cast<acc_t>(a.lo),
        static_cast<acc_t>(a.hi), static_cast<acc_t>(a.quantum)));
  }
};

template <typename scalar_t, typename index_t, int VEC, bool kBroadcast>
__global__ void __launch_bounds__(kThreads) sign_step_kernel(SignStepArgs a) {
  using Vec = AlignedVec<scalar_t, VEC>;
  auto* x = static_cast<scalar_t*>(a.x);
  const auto* x0 = static_cast<const scalar_t*>(a.x0);
  const auto* grad = static_cast<const scalar_t*>(a.grad);
  const SignStepElement<scalar_t, index_t, kBroadcast> update{a};
  const index_t numel = static_cast<index_t>(a.numel);
  const index_t num_vecs = numel / VEC;
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  const index_t first = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;

  for (index_t v = first; v < num_vecs; v += stride) {
    const index_t i0 = v * VEC;
    Vec xv = *reinterpret_cast<const Vec*>(x + i0);
    const Vec x0v = *reinterpret_cast<const Vec*>(x0 + i0);
    const Vec gv = *reinterpret_cast<const Vec*>(grad + i0);
    Coord4<index_t> c;
    if constexpr (kBroadcast) c.set(i0, a.shape);
#pragma unroll
    for (int j = 0; j < VEC; ++j) update(xv.v[j], x0v.v[j], gv.v[j], c);
    *reinterpret_cast<Vec*>(x + i0) = xv;
  }
  // The last numel % VEC elements, one a thread.
  const index_t i = num_vecs * VEC + first;
  if (i < numel) {
    Coord4<index_t> c;
    if constexpr (kBroadcast) c.set(i, a.shape);
    update(x[i], x0[i], grad[i], c);
  }
}

int64_t max_offset(const Shape4& shape, const Strides4& s) {
  int64_t off = 0;
  for (int d = 0; d < kMaxDims; ++d) off += (shape.size[d] - 1) * s.stride[d];
  return off;
}

// The largest offset into any broadcast operand.
int64_t broadcast_reach(const SignStepArgs& a) {
  int64_t largest = 0;
  if (a.step_map) largest = std::max(largest, max_offset(a.shape, a.step_strides));
  if (a.eps_map) largest = std::max(largest, max_offset(a.shape, a.eps_strides));
  if (a.mask) largest = std::max(largest, max_offset(a.shape, a.mask_strides));
  if (a.active) largest = std::max(largest, max_offset(a.shape, a.active_strides));
  return largest;
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename scalar_t, int VEC>
cudaError_t launch_vec(const SignStepArgs& a, cudaStream_t stream) {
  const int64_t blocks = blocks_for((a.numel + VEC - 1) / VEC, kThreads, kMaxBlocks);
  const bool small = fits_int32_indexing(a.numel, VEC, blocks * kThreads, broadcast_reach(a));
  const bool broadcast = a.has_broadcast_operand();
  if (small && broadcast) {
    sign_step_kernel<scalar_t, int32_t, VEC, true><<<blocks, kThreads, 0, stream>>>(a);
  } else if (small) {
    sign_step_kernel<scalar_t, int32_t, VEC, false><<<blocks, kThreads, 0, stream>>>(a);
  } else if (broadcast) {
    sign_step_kernel<scalar_t, int64_t, VEC, true><<<blocks, kThreads, 0, stream>>>(a);
  } else {
    sign_step_kernel<scalar_t, int64_t, VEC, false><<<blocks, kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_sign_step(const SignStepArgs& args, cudaStream_t stream) {
  if (args.numel == 0) return cudaSuccess;
  return dispatch_dtype(args.dtype, [&](auto tag) {
    using scalar_t = decltype(tag);
    constexpr int kVec = 16 / sizeof(scalar_t);
    // 16-byte vectors where all three dense operands allow them, else one element at a time.
    const bool vectorizable = aligned(args.x, 16) && aligned(args.x0, 16) && aligned(args.grad, 16);
    return vectorizable ? launch_vec<scalar_t, kVec>(args, stream)
                        : launch_vec<scalar_t, 1>(args, stream);
  });
}

}  // namespace fastadv
