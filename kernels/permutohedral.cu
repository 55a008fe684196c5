// CUDA kernels of the permutohedral lattice (math: permutohedral_math.h).
//
// Building: one thread a pixel writes its d+1 vertex keys; the host side sorts the pairs by key
// (csrc/cuda/permutohedral_cuda.cpp), numbers the vertices by first touch and calls the neighbour
// kernel, a binary search among the sorted keys a (vertex, direction).
//
// Filtering: the splat walks the pairs in vertex order (`order`), a warp a run of kSplatRun pairs
// with its lanes over the channels, and adds each vertex's partial sum once per run: few atomics,
// and none of the contention of pixels scattering into the few vertices of a bilateral lattice.
// The blur (one launch a direction) and the slice are one thread a (row, channel).
#include "kernels/cuda_utils.cuh"
#include "kernels/permutohedral_launch.h"

namespace fastadv {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int kSplatRun = 64;  // sorted pairs a warp adds up

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) keys_kernel(LatticeKeysArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.batch * a.pixels) return;
  Simplex<D, T> cell;
  locate_simplex<D, T>(static_cast<const T*>(a.features) + i * D, cell);
  if (!cell.in_range) *a.out_of_range = 1;
  const auto image = static_cast<uint32_t>(i / a.pixels);
  constexpr int kWords = LatticeKey<D>::kWords;
  for (int r = 0; r <= D; ++r) {
    const LatticeKey<D> key = cell.vertex(r, image);
    const int64_t p = i * (D + 1) + r;
    for (int w = 0; w < kWords; ++w) a.keys[p * kWords + w] = key.word[w];
    static_cast<T*>(a.weights)[p] = cell.weight[r];
  }
}

template <int D>
__device__ LatticeKey<D> load_key(const uint64_t* keys, int64_t index) {
  LatticeKey<D> key;
  for (int w = 0; w < LatticeKey<D>::kWords; ++w)
    key.word[w] = keys[index * LatticeKey<D>::kWords + w];
  return key;
}

template <int D>
__global__ void __launch_bounds__(kThreads) neighbours_kernel(LatticeNeighbourArgs a) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= a.vertices * (D + 1)) return;
  const int j = static_cast<int>(t / a.vertices);
  const int64_t v = t % a.vertices;
  const LatticeKey<D> key = load_key<D>(a.keys, v);
  for (int side = 0; side < 2; ++side) {
    const LatticeKey<D> n = lattice_neighbour(key, j, 2 * side - 1);
    int64_t lo = 0, hi = a.vertices;  // the first sorted key >= n lies in [lo, hi]
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (load_key<D>(a.sorted_keys, mid) < n) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    const bool found = lo < a.vertices && load_key<D>(a.sorted_keys, lo) == n;
    a.neighbours[t * 2 + side] = found ? a.sorted_vertex[lo] : static_cast<int32_t>(a.vertices);
  }
}

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) splat_kernel(LatticeFilterArgs a) {
  const int64_t pairs = a.pixels * (D + 1);
  const int64_t run = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  const int64_t begin = run * kSplatRun;
  if (begin >= pairs) return;
  const int64_t end = begin + kSplatRun < pairs ? begin + kSplatRun : pairs;
  const T* values = static_cast<const T*>(a.values);
  const T* weights = static_cast<const T*>(a.weights);
  T* lattice = static_cast<T*>(a.lattice);
  for (int c = lane; c < a.channels; c += kWarp) {
    T sum = 0;
    for (int64_t k = begin; k < end; ++k) {
      const int32_t p = a.order[k];
      const int32_t v = a.offsets[p];
      sum += weights[p] * values[static_cast<int64_t>(p / (D + 1)) * a.channels + c];
      const bool last = k + 1 == end || a.offsets[a.order[k + 1]] != v;
      if (last) {
        if (static_cast<uint64_t>(v) < static_cast<uint64_t>(a.vertices)) {
          atomicAdd(lattice + static_cast<int64_t>(v) * a.channels + c, sum);
        }
        sum = 0;
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    blur_kernel(LatticeFilterArgs a, const int32_t* neighbours, const T* from, T* to) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= a.vertices * a.channels) return;
  const int64_t v = t / a.channels, c = t % a.channels;
  const auto clamp_vertex = [&](int32_t n) {
    return static_cast<uint64_t>(n) < static_cast<uint64_t>(a.vertices) ? int64_t{n} : a.vertices;
  };
  const int64_t n0 = clamp_vertex(neighbours[2 * v]), n1 = clamp_vertex(neighbours[2 * v + 1]);
  to[t] = from[t] + T(0.5) * (from[n0 * a.channels + c] + from[n1 * a.channels + c]);
}

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) slice_kernel(LatticeFilterArgs a, const T* lattice) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= a.pixels * a.channels) return;
  const int64_t i = t / a.channels, c = t % a.channels;
  const T* weights = static_cast<const T*>(a.weights);
  T sum = 0;
  for (int r = 0; r <= D; ++r) {
    const int32_t o = a.offsets[i * (D + 1) + r];
    if (static_cast<uint64_t>(o) >= static_cast<uint64_t>(a.vertices)) continue;
    sum += weights[i * (D + 1) + r] * lattice[static_cast<int64_t>(o) * a.channels + c];
  }
  const T base = a.add ? static_cast<const T*>(a.add)[t] : T(0);
  static_cast<T*>(a.out)[t] = base + lattice_alpha<T>(D) * sum;
}

template <int D, typename T>
cudaError_t filter(const LatticeFilterArgs& a, cudaStream_t stream) {
  const int64_t runs = (a.pixels * (D + 1) + kSplatRun - 1) / kSplatRun;
  splat_kernel<D, T><<<blocks_for(runs * kWarp, kThreads), kThreads, 0, stream>>>(a);
  T* from = static_cast<T*>(a.lattice);
  T* to = static_cast<T*>(a.lattice_swap);
  for (int step = 0; step <= D; ++step) {
    const int j = a.transpose ? D - step : step;
    blur_kernel<T><<<blocks_for(a.vertices * a.channels, kThreads), kThreads, 0, stream>>>(
        a, a.neighbours + int64_t{j} * a.vertices * 2, from, to);
    T* swap = from;
    from = to;
    to = swap;
  }
  slice_kernel<D, T><<<blocks_for(a.pixels * a.channels, kThreads), kThreads, 0, stream>>>(a, from);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_lattice_keys(const LatticeKeysArgs& args, cudaStream_t stream) {
  if (args.batch * args.pixels == 0) return cudaSuccess;
  return dispatch_lattice_dim(args.dim, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    const int64_t blocks = blocks_for(args.batch * args.pixels, kThreads);
    if (args.is_double) {
      keys_kernel<D, double><<<blocks, kThreads, 0, stream>>>(args);
    } else {
      keys_kernel<D, float><<<blocks, kThreads, 0, stream>>>(args);
    }
    return cudaGetLastError();
  });
}

cudaError_t launch_lattice_neighbours(const LatticeNeighbourArgs& args, cudaStream_t stream) {
  if (args.vertices == 0) return cudaSuccess;
  return dispatch_lattice_dim(args.dim, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    neighbours_kernel<D>
        <<<blocks_for(args.vertices * (D + 1), kThreads), kThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_lattice_filter(const LatticeFilterArgs& args, cudaStream_t stream) {
  if (args.pixels == 0 || args.channels == 0) return cudaSuccess;
  return dispatch_lattice_dim(args.dim, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    return args.is_double ? filter<D, double>(args, stream) : filter<D, float>(args, stream);
  });
}

}  // namespace fastadv
