// CUDA kernels of the colour ops (formulas: color_math.h).
//
// rgb_to_lab and delta_e2000 are elementwise, one pixel a thread. color_variance is
// compute-bound (a ΔE00 is ~150 flops and 5 special functions): Lab and chroma are computed once
// a pixel into a scratch buffer, then one block takes a 32 x 16 tile of the map, its Lab in
// shared memory. Each unordered pair inside the tile is computed once, by the thread of its first
// pixel, and added to both ends (shared-memory atomics); a pair that leaves the tile is computed by
// each of the two tiles it joins, for its own pixel only. Border pairs are a small share
// (~2(k-1)/16 of the tile's pairs at k = 3), so the tiles need no halo exchange. Flat regions
// give exact zeros on both paths: delta_e2000_squared cancels exactly, whatever ptxas contracts.
#include "kernels/color_launch.h"
#include "kernels/cuda_utils.cuh"

namespace fastadv {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20;  // the grid-stride loops cover the rest
constexpr int kTileW = 32, kTileH = 16, kBlockRows = 8;

template <typename T>
__global__ void __launch_bounds__(kThreads) rgb_to_lab_kernel(ColorPixelsArgs a) {
  const T* rgb = static_cast<const T*>(a.in1);
  T* lab = static_cast<T*>(a.out);
  const PixelStrides in = a.in1_strides, out = a.out_strides;
  const int64_t p = a.inner, n = a.outer * p;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / p, j = i % p;
    const T* src = rgb + in.offset(m, j);
    const Lab<T> v = rgb_to_lab(src[0], src[in.channel], src[2 * in.channel]);
    T* dst = lab + out.offset(m, j);
    dst[0] = v.L;
    dst[out.channel] = v.a;
    dst[2 * out.channel] = v.b;
  }
}

template <typename T>
__device__ __forceinline__ Lab<T> load_pixel(const T* base, const PixelStrides& s, int64_t m,
                                             int64_t j) {
  const T* src = base + s.offset(m, j);
  return {src[0], src[s.channel], src[2 * s.channel]};
}

template <typename T>
__global__ void __launch_bounds__(kThreads) delta_e2000_kernel(ColorPixelsArgs a) {
  const T* x = static_cast<const T*>(a.in1);
  const T* y = static_cast<const T*>(a.in2);
  T* out = static_cast<T*>(a.out);
  const T inv_kl = T(1 / a.kl), inv_kc = T(1 / a.kc), inv_kh = T(1 / a.kh);
  const int64_t p = a.inner, n = a.outer * p;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / p, j = i % p;
    out[a.out_strides.offset(m, j)] =
        delta_e2000(load_pixel(x, a.in1_strides, m, j), load_pixel(y, a.in2_strides, m, j), inv_kl,
                    inv_kc, inv_kh);
  }
}

// The [B, 4, H, W] planes L, a, b, chroma of the colour-variance scratch buffer.
template <typename T>
__global__ void __launch_bounds__(kThreads) lab_planes_kernel(ColorVarianceArgs a) {
  const T* rgb = static_cast<const T*>(a.rgb);
  T* lab = static_cast<T*>(a.lab);
  const int64_t plane = a.height * a.width, n = a.batch * plane;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    write_lab_planes(rgb, lab, plane, i);
  }
}

template <typename T>
struct TileLab {
  T L[kTileH][kTileW], a[kTileH][kTileW], b[kTileH][kTileW], c[kTileH][kTileW];
  T sum[kTileH][kTileW];  // Σ (g ΔE00)² of each pixel

  __device__ LabC<T> at(int ty, int tx) const {
    return {L[ty][tx], a[ty][tx], b[ty][tx], c[ty][tx]};
  }
};

template <typename T>
__device__ __forceinline__ LabC<T> load_lab(const T* __restrict__ lab, int64_t plane, int64_t i) {
  return {lab[i], lab[i + plane], lab[i + 2 * plane], lab[i + 3 * plane]};
}

// The map of one 32 x 16 tile of one image, from (y0, x0).
template <typename T>
__device__ __forceinline__ void color_variance_tile(const ColorVarianceArgs& a, TileLab<T>& tile,
                                                    const T* lab, T* out, int64_t y0, int64_t x0) {
  const int64_t h = a.height, w = a.width, plane = h * w;
  const int tx = threadIdx.x;
  const int r = a.radius;
  const T sigma = static_cast<T>(a.sigma);

  for (int ty = threadIdx.y; ty < kTileH; ty += kBlockRows) {
    const int64_t y = y0 + ty, x = x0 + tx;
    if (y < h && x < w) {
      const LabC<T> v = load_lab(lab, plane, y * w + x);
      tile.L[ty][tx] = v.L;
      tile.a[ty][tx] = v.a;
      tile.b[ty][tx] = v.b;
      tile.c[ty][tx] = v.c;
    }
    tile.sum[ty][tx] = T(0);
  }
  __syncthreads();

  for (int ty = threadIdx.y; ty < kTileH; ty += kBlockRows) {
    const int64_t y = y0 + ty, x = x0 + tx;
    if (y >= h || x >= w) continue;
    const LabC<T> p = tile.at(ty, tx);
    T own = T(0);
    for (int dy = 0; dy <= r; ++dy) {
      for (int dx = -r; dx <= r; ++dx) {
        if (!is_forward_offset(dy, dx)) continue;
        const T w2 = gaussian_weight_squared(dy, dx, sigma);
        // (p, p + d): the pair is this thread's; inside the tile it also feeds p + d.
        const int64_t qy = y + dy, qx = x + dx;
        if (qy < h && qx >= 0 && qx < w) {
          const int sy = ty + dy, sx = tx + dx;
          if (sy < kTileH && sx >= 0 && sx < kTileW) {
            const T e = w2 * delta_e2000_squared(p, tile.at(sy, sx), T(1), T(1), T(1));
            own += e;
            atomicAdd(&tile.sum[sy][sx], e);
          } else {
            own += w2 * delta_e2000_squared(p, load_lab(lab, plane, qy * w + qx), T(1), T(1), T(1));
          }
        }
        // (p - d, p) where p - d is in another tile: that tile counts it for p - d only.
        const int64_t ry = y - dy, rx = x - dx;
        const int sy = ty - dy, sx = tx - dx;
        const bool in_tile = sy >= 0 && sx >= 0 && sx < kTileW;
        if (!in_tile && ry >= 0 && rx >= 0 && rx < w) {
          own += w2 * delta_e2000_squared(load_lab(lab, plane, ry * w + rx), p, T(1), T(1), T(1));
        }
      }
    }
    atomicAdd(&tile.sum[ty][tx], own);
  }
  __syncthreads();

  for (int ty = threadIdx.y; ty < kTileH; ty += kBlockRows) {
    const int64_t y = y0 + ty, x = x0 + tx;
    if (y < h && x < w) {
      const int64_t neighbours = window_extent(y, h, r) * window_extent(x, w, r) - 1;
      out[y * w + x] = color_variance_value(tile.sum[ty][tx], neighbours);
    }
  }
  __syncthreads();  // before the block's next tile overwrites this one's shared memory
}

// The tiles of all images in one dimension of the grid (gridDim.y and z stop at 65535), a
// block-stride loop over them beyond its 2^31 - 1 blocks.
template <typename T>
__global__ void __launch_bounds__(kTileW* kBlockRows) color_variance_kernel(ColorVarianceArgs a) {
  __shared__ TileLab<T> tile;
  const int64_t plane = a.height * a.width;
  const int64_t tiles_x = (a.width + kTileW - 1) / kTileW;
  const int64_t tiles = tiles_x * ((a.height + kTileH - 1) / kTileH);
  for (int64_t t = blockIdx.x; t < a.batch * tiles; t += gridDim.x) {
    const int64_t image = t / tiles, tile_y = t % tiles / tiles_x, tile_x = t % tiles_x;
    color_variance_tile(a, tile, static_cast<const T*>(a.lab) + image * 4 * plane,
                        static_cast<T*>(a.out) + image * plane, tile_y * kTileH, tile_x * kTileW);
  }
}

}  // namespace

cudaError_t launch_rgb_to_lab(const ColorPixelsArgs& args, cudaStream_t stream) {
  const int64_t n = args.outer * args.inner;
  if (n == 0) return cudaSuccess;
  return dispatch_compute(args.is_double, [&](auto tag) {
    rgb_to_lab_kernel<decltype(tag)>
        <<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_delta_e2000(const ColorPixelsArgs& args, cudaStream_t stream) {
  const int64_t n = args.outer * args.inner;
  if (n == 0) return cudaSuccess;
  return dispatch_compute(args.is_double, [&](auto tag) {
    delta_e2000_kernel<decltype(tag)>
        <<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_color_variance(const ColorVarianceArgs& args, cudaStream_t stream) {
  const int64_t n = args.batch * args.height * args.width;
  if (n == 0) return cudaSuccess;
  const int64_t tiles =
      args.batch * ((args.width + kTileW - 1) / kTileW) * ((args.height + kTileH - 1) / kTileH);
  return dispatch_compute(args.is_double, [&](auto tag) {
    using T = decltype(tag);
    lab_planes_kernel<T><<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, stream>>>(args);
    color_variance_kernel<T><<<blocks_for(tiles, 1), dim3(kTileW, kBlockRows), 0, stream>>>(args);
    return cudaGetLastError();
  });
}

}  // namespace fastadv
