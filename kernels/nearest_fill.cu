// CUDA kernels of the nearest-non-class neighbour fill (algorithm and tie rule:
// nearest_fill_math.h).
//
// Pass 1: one warp a row. Pass 2: one thread a column, so that at each step of the sweeps the
// threads of a warp touch adjacent columns of one row; the envelope stacks live in global
// scratch laid out [B, H, W] for the same reason. All images of the batch in one grid.
#include "kernels/cuda_utils.cuh"
#include "kernels/nearest_fill_launch.h"

namespace fastadv {
namespace {

constexpr int kThreads = 128;
constexpr int kWarp = 32;
// Pass 2 has one thread a column, often only a few thousand threads, each a long chain of
// dependent steps: one-warp blocks spread them over as many SMs as possible.
constexpr int kColumnThreads = 32;

// Pass 1: one warp a row, 32 columns a step; a ballot shows every lane where the non-hidden
// columns of its chunk are, so the scans are bit operations and the accesses coalesce.
__global__ void __launch_bounds__(kThreads) rows_kernel(NearestFillArgs a) {
  const int64_t line = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (line >= a.batch * a.height) return;  // the whole warp: its lanes share the line
  const int32_t lane = static_cast<int32_t>(threadIdx.x % kWarp);
  const bool* hidden = a.hide + line * a.width;
  int32_t* site = a.site + line * a.width;
  int32_t before = kNoSite;
  for (int32_t x0 = 0; x0 < a.width; x0 += kWarp) {
    const int32_t x = x0 + lane;
    const uint32_t visible = __ballot_sync(0xffffffffu, x < a.width && !hidden[x]);
    if (x < a.width) site[x] = last_visible(visible, lane, x0, before);
    before = last_visible(visible, kWarp - 1, x0, before);
  }
  int32_t after = kNoSite;
  for (int32_t x0 = (a.width - 1) / kWarp * kWarp; x0 >= 0; x0 -= kWarp) {
    const int32_t x = x0 + lane;
    const uint32_t visible = __ballot_sync(0xffffffffu, x < a.width && !hidden[x]);
    if (x < a.width) site[x] = nearer_site(site[x], first_visible(visible, lane, x0, after), x);
    after = first_visible(visible, 0, x0, after);
  }
}

template <typename label_t>
__global__ void __launch_bounds__(kColumnThreads)
    columns_kernel(NearestFillArgs a, int32_t* stacks) {
  const int64_t column = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (column >= a.batch * a.width) return;
  const int64_t b = column / a.width;
  const int32_t c = static_cast<int32_t>(column % a.width);
  const int64_t plane = static_cast<int64_t>(a.height) * a.width;
  const Strided<int32_t> s{stacks + b * plane + c, a.width};
  const Strided<int32_t> t{stacks + (a.batch + b) * plane + c, a.width};
  column_fill<label_t>(a, b, c, s, t);
}

template <typename label_t>
cudaError_t launch_columns(const NearestFillArgs& a, int32_t* stacks, cudaStream_t stream) {
  const int64_t blocks = blocks_for(a.batch * a.width, kColumnThreads);
  columns_kernel<label_t><<<blocks, kColumnThreads, 0, stream>>>(a, stacks);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_nearest_fill(const NearestFillArgs& args, int32_t* stacks, cudaStream_t stream) {
  if (args.batch == 0 || args.height == 0 || args.width == 0) return cudaSuccess;
  rows_kernel<<<blocks_for(args.batch * args.height * kWarp, kThreads), kThreads, 0, stream>>>(
      args);
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) return error;
  switch (args.label_type) {
    case LabelType::UInt8: return launch_columns<uint8_t>(args, stacks, stream);
    case LabelType::Int32: return launch_columns<int32_t>(args, stacks, stream);
    case LabelType::Int64: return launch_columns<int64_t>(args, stacks, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace fastadv
